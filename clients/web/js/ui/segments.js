// The segment list: pick the active one, rename, recolour, opacity, visibility, delete, add.

export function mountSegments(app, el) {
  el.innerHTML = `<h2>Segments</h2><ul class="segments"></ul>
    <button class="add" title="new segment (N)">+ Segment</button>
    <p class="hint"></p>`;
  const list = el.querySelector('.segments');
  const { session } = app;
  el.querySelector('.add').onclick = () => session.createSegment().catch((err) => app.report(err));

  function row(s) {
    const li = document.createElement('li');
    li.className = 'segment';
    li.dataset.id = s.id;
    li.classList.toggle('active', s.id === session.activeSegmentId);
    li.innerHTML = `
      <input type="radio" name="active" title="edit this segment">
      <input type="color" title="colour">
      <input type="text" class="name" maxlength="200" title="name (Enter to save)">
      <input type="checkbox" class="visible" title="show (H)">
      <input type="range" class="opacity" min="0" max="1" step="0.05" title="opacity">
      <span class="rev" title="revision"></span>
      <button class="delete" title="delete this segment">✕</button>`;
    const q = (sel) => li.querySelector(sel);
    q('[type=radio]').checked = s.id === session.activeSegmentId;
    q('[type=radio]').onchange = () => session.setActiveSegment(s.id);
    q('[type=color]').value = s.color;
    q('[type=color]').onchange = (e) => session.updateSegment(s.id, { color: e.target.value }).catch((err) => app.report(err));
    q('.name').value = s.name;
    q('.name').onchange = (e) => session.updateSegment(s.id, { name: e.target.value }).catch((err) => app.report(err));
    q('.name').onfocus = () => session.setActiveSegment(s.id);
    q('.visible').checked = s.visible;
    q('.visible').onchange = (e) => session.styleSegment(s.id, { visible: e.target.checked });
    q('.opacity').value = String(s.opacity);
    q('.opacity').oninput = (e) => session.styleSegment(s.id, { opacity: Number(e.target.value) });
    q('.rev').textContent = `r${s.revision}`;
    q('.delete').onclick = () => {
      if (confirm(`Delete segment “${s.name}” and its history?`)) session.deleteSegment(s.id).catch((err) => app.report(err));
    };
    return li;
  }

  function render() {
    // keep the row being typed in: re-render only when not editing a name
    if (el.contains(document.activeElement) && document.activeElement.classList.contains('name')) {
      for (const li of list.children) {
        const s = session.segments.find((x) => String(x.id) === li.dataset.id);
        if (s) li.querySelector('.rev').textContent = `r${s.revision}`;
      }
      return;
    }
    list.replaceChildren(...session.segments.map(row));
    el.querySelector('.hint').textContent = session.segments.length ? ''
      : 'Click on an organ: a segment is created for you.';
  }

  app.addEventListener('segments', render);
  app.addEventListener('session', render);
}
