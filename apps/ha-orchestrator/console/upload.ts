// "Start an upgrade": a package and its signature, checked in the page, then sent to POST
// /api/v1/upgrade/trigger as the same multipart form curl sends, with the upload's progress shown.
// A refusal shows the server's code, reason and message.
import { api, authHeaders, parseError, unauthorized, type ApiError } from './api.js';
import { byId, h, replace } from './dom.js';
import { formatBytes } from './format.js';
import { checkPackage, type Check } from './package-check.js';
import type { PackagePolicy } from './types.js';

interface Accepted {
  task_id: string;
  to_version: string;
}

export function setUpUpload(onAccepted: (taskId: string) => void): void {
  const form = byId<HTMLFormElement>('upload-form');
  const fileInput = byId<HTMLInputElement>('package-file');
  const signature = byId<HTMLTextAreaElement>('signature');
  const signatureFile = byId<HTMLInputElement>('signature-file');
  const checks = byId<HTMLUListElement>('upload-checks');
  const result = byId('upload-result');
  const progress = byId<HTMLProgressElement>('upload-progress');
  const submit = byId<HTMLButtonElement>('upload-submit');
  let policy: PackagePolicy | null = null;

  signatureFile.addEventListener('change', () => {
    const file = signatureFile.files?.[0];
    if (file === undefined) return;
    void file.text().then((text) => {
      signature.value = text.trim();
    });
  });

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const file = fileInput.files?.[0];
    if (file === undefined) {
      showResult(result, 'error', 'Choose the package file (a .zip) first.');
      fileInput.focus();
      return;
    }
    submit.disabled = true;
    void (async () => {
      try {
        replace(result);
        policy ??= await api<PackagePolicy>('/api/v1/upgrade/package-policy');
        const found = await checkPackage(file, signature.value, policy);
        showChecks(checks, found);
        if (found.some((c) => c.ok === false)) {
          showResult(result, 'error', 'Not uploaded: the package did not pass the checks above.');
          return;
        }
        const accepted = await send(file, signature.value.trim(), progress);
        showResult(
          result,
          'ok',
          `Accepted: task ${accepted.task_id} upgrades the pair to ${accepted.to_version}. Follow it above.`,
        );
        form.reset();
        onAccepted(accepted.task_id);
      } catch (error) {
        showResult(result, 'error', describe(error));
      } finally {
        submit.disabled = false;
        progress.hidden = true;
      }
    })();
  });
}

function describe(error: unknown): string {
  if (error instanceof Error && 'code' in error) {
    const e = error as ApiError;
    return `Refused (HTTP ${e.status} ${e.code}${e.reason === null ? '' : `, ${e.reason}`}): ${e.message}`;
  }
  return error instanceof Error ? `Upload failed: ${error.message}` : 'Upload failed.';
}

function showChecks(root: HTMLUListElement, checks: readonly Check[]): void {
  replace(
    root,
    ...checks.map((c) =>
      h(
        'li',
        { class: c.ok === true ? 'ok' : c.ok === false ? 'bad' : 'unknown' },
        h('span', { class: 'mark' }, c.ok === true ? 'passed:' : c.ok === false ? 'failed:' : 'later:'),
        ` ${c.text}`,
      ),
    ),
  );
}

function showResult(root: HTMLElement, tone: 'ok' | 'error', text: string): void {
  replace(root, h('p', { class: tone === 'ok' ? 'success' : 'error' }, text));
}

/** XMLHttpRequest rather than fetch: it reports the upload's progress. */
function send(file: File, signature: string, progress: HTMLProgressElement): Promise<Accepted> {
  const body = new FormData();
  body.append('signature', signature);
  body.append('package', file, file.name);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/v1/upgrade/trigger');
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.setRequestHeader('accept', 'application/json');
    progress.hidden = false;
    progress.value = 0;
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) {
        progress.max = event.total;
        progress.value = event.loaded;
        progress.textContent = `${formatBytes(event.loaded)} of ${formatBytes(event.total)}`;
      }
    });
    xhr.addEventListener('load', () => {
      if (xhr.status === 201) resolve(JSON.parse(xhr.responseText) as Accepted);
      else reject(unauthorized(parseError(xhr.status, xhr.responseText)));
    });
    xhr.addEventListener('error', () => reject(new Error('the connection to the orchestrator failed')));
    xhr.send(body);
  });
}
