// A modal yes/no question on a native <dialog>: focus is trapped and
// restored by the browser, and Escape answers "no".

import { h } from '../dom.js';

/** Resolves true when the user confirms, false otherwise. */
export function confirmDialog({ id = 'confirm-dialog', title, message, details, confirmLabel, cancelLabel = 'Cancel', danger = false }) {
  return new Promise((resolve) => {
    document.getElementById(id)?.remove();
    const yes = h('button', { type: 'button', class: ['btn', danger ? 'btn-danger' : 'btn-primary'], id: `${id}-confirm` }, confirmLabel);
    const no = h('button', { type: 'button', class: 'btn', id: `${id}-cancel` }, cancelLabel);
    const dialog = h(
      'dialog',
      { class: 'confirm', id, 'aria-labelledby': `${id}-title`, 'aria-describedby': `${id}-message` },
      h('div', { class: 'dialog-head' }, h('h2', { id: `${id}-title` }, title)),
      h('div', { class: 'dialog-body' }, h('p', { id: `${id}-message` }, message), details ? h('p', { class: 'muted' }, details) : null),
      h('div', { class: 'dialog-foot' }, no, yes),
    );
    yes.addEventListener('click', () => dialog.close('confirm'));
    no.addEventListener('click', () => dialog.close('cancel'));
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'confirm');
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    // The safe answer has focus: Enter never restarts or cancels by accident.
    no.focus();
  });
}
