// Error and info messages: a stack of dismissable notes in the corner.

export function mountMessages(app, el) {
  app.addEventListener('message', (e) => {
    const { level, title, detail } = e.detail;
    const last = el.lastElementChild;
    if (last && last.dataset.key === `${level}|${title}|${detail}`) return; // said just now
    const note = document.createElement('div');
    note.dataset.key = `${level}|${title}|${detail}`;
    note.className = `note ${level}`;
    note.setAttribute('role', level === 'error' ? 'alert' : 'status');
    note.innerHTML = '<strong></strong> <span></span><button title="dismiss">✕</button>';
    note.querySelector('strong').textContent = title;
    note.querySelector('span').textContent = detail;
    note.querySelector('button').onclick = () => note.remove();
    el.append(note);
    while (el.children.length > 4) el.firstElementChild.remove();
    setTimeout(() => note.remove(), level === 'info' ? 4_000 : 12_000);
  });
}
