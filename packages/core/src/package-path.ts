// The one rule for file paths inside an upgrade package (ZIP entry names and the paths a manifest
// names), shared by every service that unpacks packages so they refuse exactly the same things.

const encoder = new TextEncoder();

/**
 * Why `path` is not a safe relative path inside a package, or null when it is. A trailing `/` (a
 * directory entry) is allowed; empty, `.` and `..` segments, absolute paths, drive letters,
 * backslashes, NUL, paths over 4096 characters and segments over 255 bytes are not.
 *
 * @example unsafePackagePathReason('../etc/passwd') // "path traversal ('..' segment)"
 */
export function unsafePackagePathReason(path: string): string | null {
  if (path.length === 0) return 'empty path';
  if (path.length > 4096) return 'path longer than 4096 characters';
  if (path.includes('\0')) return 'NUL character in path';
  if (path.includes('\\')) return 'backslash in path (only forward slashes are allowed)';
  if (path.startsWith('/')) return 'absolute path';
  if (/^[A-Za-z]:/.test(path)) return 'drive letter in path';
  const segments = (path.endsWith('/') ? path.slice(0, -1) : path).split('/');
  for (const segment of segments) {
    if (segment === '..') return "path traversal ('..' segment)";
    if (segment === '.' || segment === '') return "empty or '.' path segment";
    if (encoder.encode(segment).length > 255) return 'path segment longer than 255 bytes';
  }
  return null;
}
