// One confirmation dialog for the actions that change the pair: a modal <dialog> (keyboard: Tab
// stays inside, Escape closes it) that says what will happen, with an optional reason field.
import { byId, replace } from './dom.js';

export interface ConfirmOptions {
  title: string;
  /** What will happen, one paragraph each. */
  explain: string[];
  confirmLabel: string;
  /** Asks for a reason (required) with this label. */
  reasonLabel?: string;
  /** An unticked checkbox with this label: a heavier variant of the action. */
  optionLabel?: string;
}

export type ConfirmResult = { confirmed: false } | { confirmed: true; reason: string; option: boolean };

export function confirmAction(options: ConfirmOptions): Promise<ConfirmResult> {
  const dialog = byId<HTMLDialogElement>('confirm');
  const form = byId<HTMLFormElement>('confirm-form');
  const reasonRow = byId('confirm-reason-row');
  const reason = byId<HTMLTextAreaElement>('confirm-reason');
  byId('confirm-title').textContent = options.title;
  replace(byId('confirm-text'), ...options.explain.map((text) => paragraph(text)));
  byId('confirm-ok').textContent = options.confirmLabel;
  byId('confirm-reason-label').textContent = options.reasonLabel ?? '';
  reasonRow.hidden = options.reasonLabel === undefined;
  reason.required = options.reasonLabel !== undefined;
  reason.value = '';
  const option = byId<HTMLInputElement>('confirm-option');
  byId('confirm-option-row').hidden = options.optionLabel === undefined;
  byId('confirm-option-label').textContent = options.optionLabel ?? '';
  option.checked = false;
  return new Promise((resolve) => {
    const onClose = (): void => {
      form.removeEventListener('submit', onSubmit);
      dialog.removeEventListener('close', onClose);
      resolve(
        dialog.returnValue === 'confirm'
          ? { confirmed: true, reason: reason.value.trim(), option: option.checked }
          : { confirmed: false },
      );
    };
    const onSubmit = (event: SubmitEvent): void => {
      // The "Go back" button submits with value "back" and needs no reason.
      const submitter = event.submitter as HTMLButtonElement | null;
      if (submitter?.value === 'confirm' && options.reasonLabel !== undefined && reason.value.trim() === '') {
        event.preventDefault();
        reason.focus();
      }
    };
    form.addEventListener('submit', onSubmit);
    dialog.addEventListener('close', onClose);
    dialog.returnValue = '';
    dialog.showModal();
    // The reason when one is asked for; otherwise the harmless way out, not the action.
    (options.reasonLabel === undefined ? byId('confirm-back') : reason).focus();
  });
}

function paragraph(text: string): HTMLParagraphElement {
  const p = document.createElement('p');
  p.textContent = text;
  return p;
}
