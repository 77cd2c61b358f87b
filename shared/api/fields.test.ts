import { describe, expect, it } from 'vitest';
import { isFinalRefusal, refusalReasonSchema } from './fields.js';

describe('isFinalRefusal', () => {
  it('is true for the refusals of an ended or replaced rollout, false for those waiting or a new poll changes', () => {
    const final = refusalReasonSchema.options.filter(isFinalRefusal);
    expect(final).toEqual(['halted', 'aborted', 'superseded', 'rolled-back']);
  });
});
