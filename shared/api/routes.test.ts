import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { apiRoutes, maxEncodedParamLength, type ApiRoute } from './routes.js';

const routes: ApiRoute[] = Object.values(apiRoutes);

describe('path parameters', () => {
  it.each(routes.filter((route) => route.path.includes(':')).map((route) => [route.name, route] as const))(
    '%s: every parameter has a bounded schema whose longest value, URI-encoded, the router takes',
    (_name, route) => {
      const names = [...route.path.matchAll(/:(\w+)/g)].map((match) => match[1] as string);
      expect(route.params).toBeInstanceOf(z.ZodObject);
      const shape = (route.params as z.ZodObject).shape as Record<string, z.ZodType>;
      expect(Object.keys(shape).sort()).toEqual([...names].sort());
      for (const name of names) {
        const schema = shape[name];
        expect(schema, name).toBeInstanceOf(z.ZodString);
        const maxLength = (schema as z.ZodString).maxLength;
        expect(maxLength, name).not.toBeNull();
        // The worst case: every UTF-16 unit a 3-byte UTF-8 character, 9 characters once encoded.
        expect(encodeURIComponent('…'.repeat(maxLength ?? Infinity)).length, name).toBeLessThanOrEqual(maxEncodedParamLength);
      }
    },
  );
});
