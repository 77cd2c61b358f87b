import { describe, expect, it } from 'vitest';
import { repositoryOfImage, tagOfImage } from './images.js';

describe('repositoryOfImage and tagOfImage', () => {
  it.each([
    ['127.0.0.1:5000/testapp:latest', 'testapp', 'latest'],
    ['registry.example.com/team/app:v2', 'team/app', 'v2'],
    ['localhost/app', 'app', 'latest'],
    ['nginx:1.27', 'library/nginx', '1.27'],
    ['team/app', 'team/app', 'latest'],
    ['127.0.0.1:5000/app@sha256:' + 'a'.repeat(64), 'app', undefined],
  ])('%s → %s : %s', (image, repository, tag) => {
    expect(repositoryOfImage(image)).toBe(repository);
    expect(tagOfImage(image)).toBe(tag);
  });
});
