// Sign-in with an API token. The token is checked with GET /api/v1/me
// before it is kept, so a typo never leaves a useless token in storage.

import { api, session } from '../api.js';
import { h, field, replace, setFieldError } from '../dom.js';

export function renderSignIn(main, { message, onSignedIn }) {
  const token = h('input', { type: 'password', name: 'token', autocomplete: 'off', spellcheck: 'false' });
  const status = h('p', { class: 'notice notice-info', role: 'status' }, message ?? '');
  const formError = h('p', { class: 'notice notice-error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in');

  const form = h(
    'form',
    { class: 'panel', novalidate: true, 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in to the audit console'),
    h('p', { class: 'muted' }, 'Paste your API token. It stays in this browser tab only and is forgotten when the tab closes.'),
    status,
    field({
      id: 'signin-token',
      label: 'API token',
      control: token,
      required: true,
      hint: 'Issued by an administrator with "audit-export users add" or "audit-export tokens issue".',
    }),
    formError,
    h('div', { class: 'form-actions' }, submit),
  );

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    setFieldError(token, '');
    formError.textContent = '';
    const value = token.value.trim();
    if (!value) {
      setFieldError(token, 'Enter your API token.');
      token.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      const me = await api.me(value);
      session.save(value);
      onSignedIn(me);
    } catch (err) {
      if (err.status === 401) {
        setFieldError(token, 'This token is not valid (unknown, revoked or expired).');
        token.focus();
      } else {
        formError.textContent = err.message;
      }
      submit.disabled = false;
      submit.textContent = 'Sign in';
    }
  });

  replace(main, h('div', { class: 'signin' }, form));
  token.focus();
}
