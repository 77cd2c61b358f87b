import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors.js';
import { agentConfigFromDocument } from './load.js';

function document(service: Record<string, unknown> = {}, readiness: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    nodeId: 'web-1',
    host: '10.0.0.11',
    coordinator: { urls: ['http://127.0.0.1:7070'] },
    readiness,
    services: [{ group: 'web', image: '127.0.0.1:5000/web:stable', containerName: 'web', health: { docker: true }, ...service }],
  };
}

function problemsOf(doc: Record<string, unknown>): { path: string; message: string }[] {
  try {
    agentConfigFromDocument(doc, 'agent.yaml', {});
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('agentConfigFromDocument', () => {
  it('takes image references in any form docker pull does, and an IPv6 listen address', () => {
    for (const image of ['nginx', 'team/app:v2', `[::1]:5000/app@sha512:${'a'.repeat(128)}`]) {
      expect(problemsOf(document({ image }, { listen: '[::1]:7071' }))).toEqual([]);
    }
  });

  it.each([
    ['Web:stable', /^not an image reference: repository name must be lowercase/],
    ['r.io/app:', /^not an image reference: tag ""/],
    [`app@sha256:${'a'.repeat(63)}`, /^not an image reference: digest/],
  ])('refuses the image %j at services.0.image', (image, message) => {
    expect(problemsOf(document({ image }))).toEqual([{ path: 'services.0.image', message: expect.stringMatching(message) }]);
  });

  it.each([
    ['7071', 'must be host:port, e.g. 127.0.0.1:7071, got "7071"'],
    ['127.0.0.1:70000', 'port must be between 0 and 65535, got 70000'],
  ])('refuses the listen address %j once, at readiness.listen', (listen, message) => {
    expect(problemsOf(document({}, { listen }))).toEqual([{ path: 'readiness.listen', message }]);
  });
});

describe('agentConfigFromDocument: registry.tls', () => {
  const withTls = (tls: unknown) => ({ ...document(), registry: { tls } });

  it('takes a CA alone, a client certificate alone, or both', () => {
    expect(problemsOf(withTls({ caFile: '/etc/baton/registry-ca.pem' }))).toEqual([]);
    expect(problemsOf(withTls({ certFile: '/etc/baton/node.pem', keyFile: '/etc/baton/node.key' }))).toEqual([]);
    expect(problemsOf(withTls({ caFile: '/a', certFile: '/b', keyFile: '/c' }))).toEqual([]);
  });

  it('names the missing half of a client certificate, an empty path and an unknown field', () => {
    expect(problemsOf(withTls({ certFile: '/etc/baton/node.pem' }))).toEqual([{ path: 'registry.tls.keyFile', message: 'certFile needs keyFile' }]);
    expect(problemsOf(withTls({ keyFile: '/etc/baton/node.key' }))).toEqual([{ path: 'registry.tls.certFile', message: 'keyFile needs certFile' }]);
    expect(problemsOf(withTls({ caFile: '' }))).toEqual([{ path: 'registry.tls.caFile', message: expect.any(String) }]);
    expect(problemsOf(withTls({ ca: '/a' }))).toEqual([{ path: 'registry.tls', message: expect.stringMatching(/ca/) }]);
  });
});
