// The segment list: pick the active one, rename (with organ presets that bring their colour),
// recolour, opacity, visibility, reviewed, delete, add; each with its volume in mL and the
// slices it spans, from the mask the viewer holds (updated as the mask changes). "Segment
// organ…" starts a segment with the organ model (js/organ.js) when the server has one.

import { organsOffered, startOrgan } from '../organ.js';
import { ORGAN_PRESETS, presetColor } from '../presets.js';
import { formatMl } from '../stats.js';

export function mountSegments(app, el) {
  el.innerHTML = `<h2 class="with-action">Segments <button class="view3d" title="show / hide a 3D rendering of the segments (4)">3D view</button></h2><ul class="segments"></ul>
    <div class="add-row"><button class="add" title="new segment (N)">+ Segment</button>
    <select class="preset" title="new segment named after an organ, in its colour">
      <option value="">+ organ…</option>${ORGAN_PRESETS.map(([n]) => `<option>${n}</option>`).join('')}
    </select></div>
    <div class="add-row organ-row" hidden><select class="organ-start"
      title="segment an organ automatically with the organ model (RefineNet): a new segment named after it, or the active one when it is empty and has that name"></select></div>
    <datalist id="organ-presets">${ORGAN_PRESETS.map(([n]) => `<option value="${n}">`).join('')}</datalist>
    <p class="hint"></p>`;
  const list = el.querySelector('.segments');
  const { session } = app;
  el.querySelector('.add').onclick = () => session.createSegment().catch((err) => app.report(err));
  const view3d = el.querySelector('.view3d');
  view3d.onclick = () => app.emit('render3d');
  app.addEventListener('render3d-shown', (e) => view3d.classList.toggle('on', e.detail.open));
  const preset = el.querySelector('.preset');
  preset.onchange = () => {
    const name = preset.value;
    preset.value = '';
    if (name) session.createSegment(name).catch((err) => app.report(err));
  };

  const organ = el.querySelector('.organ-start');
  function renderOrgans() {
    const organs = organsOffered(app.caps, app.models);
    el.querySelector('.organ-row').hidden = !organs.length;
    const card = (app.models?.models ?? []).find((m) => m.task === 'organ');
    const protocol = typeof card?.metrics?.protocol === 'string' ? `\nDice: ${card.metrics.protocol}` : '';
    organ.replaceChildren(new Option('Segment organ…', ''), ...organs.map((o) => {
      const option = new Option(`${o.label} · ${o.dice === null ? 'Dice not measured' : `Dice ${o.dice.toFixed(2)}`}`, o.name);
      option.title = `${o.label}: the organ model ${card?.name ?? ''} on every axial slice${protocol}`;
      return option;
    }));
  }
  organ.onchange = () => {
    const name = organ.value;
    organ.value = '';
    if (!name) return;
    organ.disabled = true;
    startOrgan(app, name).finally(() => { organ.disabled = false; });
  };
  app.addEventListener('capabilities', renderOrgans);

  /** "12.3 mL · z 34–78" (slice numbers 1-based, as in the views' titles). */
  function statsText(s) {
    const stats = session.segmentStats(s.id);
    if (!stats) return { textContent: '…', title: 'loading the mask' };
    const { range } = stats;
    const axis = session.record?.shape[0] === 1 ? null : 'z';
    const span = axis && range.z ? ` · z ${range.z[0] + 1}–${range.z[1] + 1}` : '';
    const title = `${stats.voxels} voxels × ${(stats.ml / Math.max(stats.voxels, 1) * 1000).toFixed(3)} mm³` +
      Object.entries(range).filter(([, r]) => r).map(([a, r]) => `; ${a} ${r[0] + 1}–${r[1] + 1}`).join('');
    return { textContent: `${formatMl(stats.ml)}${span}`, title: stats.voxels ? title : 'empty' };
  }

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
      <button class="delete" title="delete this segment">✕</button>
      <span class="stats"></span>
      <label class="reviewed" title="mark this segment reviewed / accepted (kept on the server)">
        <input type="checkbox"> reviewed</label>`;
    const q = (sel) => li.querySelector(sel);
    q('[type=radio]').checked = s.id === session.activeSegmentId;
    q('[type=radio]').onchange = () => session.setActiveSegment(s.id);
    q('[type=color]').value = s.color;
    q('[type=color]').onchange = (e) => session.updateSegment(s.id, { color: e.target.value }).catch((err) => app.report(err));
    q('.name').value = s.name;
    q('.name').setAttribute('list', 'organ-presets');
    q('.name').onchange = (e) => {
      const name = e.target.value;
      const color = presetColor(name);
      session.updateSegment(s.id, color ? { name, color } : { name }).catch((err) => app.report(err));
    };
    q('.name').onfocus = () => session.setActiveSegment(s.id);
    q('.visible').checked = s.visible;
    q('.visible').onchange = (e) => session.styleSegment(s.id, { visible: e.target.checked });
    q('.opacity').value = String(s.opacity);
    q('.opacity').oninput = (e) => session.styleSegment(s.id, { opacity: Number(e.target.value) });
    q('.rev').textContent = `r${s.revision}`;
    Object.assign(q('.stats'), statsText(s));
    q('.reviewed input').checked = Boolean(s.reviewed);
    li.classList.toggle('is-reviewed', Boolean(s.reviewed));
    q('.reviewed input').onchange = (e) => session.updateSegment(s.id, { reviewed: e.target.checked })
      .catch((err) => app.report(err));
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

  function renderStats() {
    for (const li of list.children) {
      const s = session.segment(Number(li.dataset.id));
      if (s) Object.assign(li.querySelector('.stats'), statsText(s));
    }
  }

  app.addEventListener('segments', render);
  app.addEventListener('session', render);
  app.addEventListener('stats', renderStats);
}
