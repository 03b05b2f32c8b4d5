// Asks for the API key once per tab (kept in sessionStorage by the Api client).

export function mountKeyDialog(app, dialog, onKey) {
  dialog.innerHTML = `<form method="dialog">
      <h2>API key</h2>
      <p>This server needs an API key. It is kept for this browser tab only.</p>
      <input type="password" name="key" autocomplete="off" placeholder="your API key" size="40">
      <menu><button value="cancel" formnovalidate>Cancel</button><button value="ok" class="primary">Use key</button></menu>
    </form>`;
  const input = dialog.querySelector('input');
  dialog.addEventListener('close', () => {
    if (dialog.returnValue !== 'ok') return;
    app.api.setKey(input.value);
    onKey();
  });
  app.addEventListener('need-key', () => {
    if (dialog.open) return;
    input.value = '';
    dialog.showModal();
  });
}
