// The toolbar: tools the server supports, 2D/3D, method, window presets, undo/redo, lock,
// propagate, hints, export.

import { propagate, toggleLock } from '../propagation.js';
import { PRESETS } from '../windowing.js';
import { downloadLabels } from './download.js';

export function mountToolbar(app, el) {
  el.innerHTML = `
    <span class="tools" role="group" aria-label="tools"></span>
    <span class="dims" role="group" aria-label="2D or 3D">
      <button data-dim="2d" title="work on the shown slice (D)">2D</button>
      <button data-dim="3d" title="work in the volume (D)">3D</button></span>
    <label>method <select class="method"></select></label>
    <button class="undo" title="undo (Ctrl+Z)">Undo</button>
    <button class="redo" title="redo (Ctrl+Y)">Redo</button>
    <label>window <select class="window">
      ${Object.keys(PRESETS).map((n) => `<option value="${n}">${n}</option>`).join('')}
      <option value="auto">auto</option><option value="custom" hidden>custom</option></select></label>
    <button class="lock" title="lock / unlock this slice of the active segment: propagation leaves it alone (L)">Lock</button>
    <button class="propagate" title="propagate the active segment from this slice along the view's axis (P)" hidden>Propagate</button>
    <select class="propagation-method" title="propagation method" hidden></select>
    <button class="hints" title="hints: the regions of the active segment most likely wrong, drawn on the views and listed by the segments (J; again: the next one)">Hints</button>
    <span class="jobs"></span>
    <span class="spacer"></span>
    <button class="export" title="download the label map (E)">Export</button>
    <button class="open" title="open or upload an image">Open…</button>
    <button class="key" title="API key">Key</button>
    <button class="help" title="shortcuts (?)">?</button>`;
  const $ = (s) => el.querySelector(s);
  const { session, tools, views } = app;

  function renderTools() {
    $('.tools').replaceChildren(...tools.offered.map((tool) => {
      const b = document.createElement('button');
      b.textContent = tool.label;
      b.dataset.tool = tool.id;
      b.title = `${tool.hint} (${tool.key.toUpperCase()})`;
      b.classList.toggle('on', tools.active === tool);
      b.onclick = () => tools.setTool(tool);
      return b;
    }));
    for (const b of el.querySelectorAll('[data-dim]')) {
      b.classList.toggle('on', b.dataset.dim === tools.dim);
      b.onclick = () => tools.setDim(b.dataset.dim);
    }
    const type = tools.active?.type;
    const methods = type ? tools.methodsFor(type) : [];
    const current = type ? tools.methodFor(type) : null;
    $('.method').replaceChildren(...methods.map((m) => {
      const o = new Option(m.name, m.name, false, m === current);
      o.title = m.description;
      return o;
    }));
    $('.method').disabled = methods.length < 2;
  }

  function renderUndo() {
    const s = session.activeSegment;
    $('.undo').disabled = !s?.can_undo;
    $('.redo').disabled = !s?.can_redo;
    $('.export').disabled = !session.record;
    $('.lock').disabled = !s;
    $('.propagate').disabled = !s || session.jobs.has(s.id);
    $('.hints').disabled = !s;
    const view = views.main;
    const locked = Boolean(s && view.layout && view.updateLock());
    $('.lock').textContent = locked ? 'Unlock' : 'Lock';
    $('.lock').classList.toggle('on', locked);
  }

  $('.method').onchange = (e) => {
    tools.preferredMethod[tools.active.type] = e.target.value;
    app.emit('method');
  };
  $('.window').onchange = (e) => {
    const name = e.target.value;
    if (name === 'auto') views.autoWindow();
    else if (PRESETS[name]) views.setWindow(PRESETS[name], name);
  };
  $('.undo').onclick = () => session.undo();
  $('.redo').onclick = () => session.redo();
  $('.export').onclick = () => downloadLabels(app).catch((err) => app.report(err));

  $('.open').onclick = () => app.emit('open');
  $('.lock').onclick = () => toggleLock(app, views.main);
  $('.propagate').onclick = () => propagate(app, views.main);
  $('.hints').onclick = () => app.hints.fetch();
  app.jobsElement = $('.jobs');
  app.addEventListener('capabilities', () => {
    const methods = app.caps.propagation_methods ?? [];
    $('.propagate').hidden = !methods.length;
    $('.propagation-method').hidden = methods.length < 2;
    $('.propagation-method').replaceChildren(...methods.map((m) => {
      const o = new Option(m.name, m.name, false, m.name === tools.propagationMethod);
      o.title = m.description;
      return o;
    }));
    tools.propagationMethod ??= methods[0]?.name ?? null;
  });
  $('.propagation-method').onchange = (e) => { tools.propagationMethod = e.target.value; };
  app.addEventListener('job', renderUndo);
  app.addEventListener('status', (e) => { if (e.detail.kind === 'slice') renderUndo(); });
  $('.key').onclick = () => app.emit('need-key');
  $('.help').onclick = () => app.emit('help');
  app.addEventListener('capabilities', renderTools);
  app.addEventListener('tool', renderTools);
  app.addEventListener('segments', renderUndo);
  app.addEventListener('session', renderUndo);
  app.addEventListener('window', () => { $('.window').value = views.windowName; });
  renderUndo();
}
