import { describe, expect, it } from 'vitest';
import { unsafePackagePathReason } from '../src/index.js';

describe('unsafePackagePathReason', () => {
  it('accepts relative paths and directory entries', () => {
    for (const path of ['a', 'app/bin/run', 'dir/', 'ü/名前.txt', 'x'.repeat(255)])
      expect(unsafePackagePathReason(path)).toBeNull();
  });

  it('names why a path is refused', () => {
    expect(unsafePackagePathReason('')).toBe('empty path');
    expect(unsafePackagePathReason(`a/${'b'.repeat(4095)}`)).toBe('path longer than 4096 characters');
    expect(unsafePackagePathReason('a\0b')).toBe('NUL character in path');
    expect(unsafePackagePathReason('a\\b')).toBe('backslash in path (only forward slashes are allowed)');
    expect(unsafePackagePathReason('/etc/passwd')).toBe('absolute path');
    expect(unsafePackagePathReason('C:/x')).toBe('drive letter in path');
    expect(unsafePackagePathReason('a/../../etc')).toBe("path traversal ('..' segment)");
    expect(unsafePackagePathReason('a//b')).toBe("empty or '.' path segment");
    expect(unsafePackagePathReason('./a')).toBe("empty or '.' path segment");
    // 128 two-byte characters: 256 bytes in one segment.
    expect(unsafePackagePathReason('é'.repeat(128))).toBe('path segment longer than 255 bytes');
  });
});
