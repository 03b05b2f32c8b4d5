// The toolbar: tools the server supports, 2D/3D, method, window presets, undo/redo, export.

import { PRESETS } from '../windowing.js';

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
    <span class="jobs"></span>
    <span class="spacer"></span>
    <button class="export" title="download the label map (E)">Export</button>
    <button class="open" title="open or upload an image">Open…</button>
    <button class="key" title="API key">Key</button>
    <button class="help" title="shortcuts (?)">?</button>`;
  const $ = (s) => el.querySelector(s);

  function renderTools() {
    $('.tools').replaceChildren(...(app.tools ?? []).map((tool) => {
      const b = document.createElement('button');
      b.textContent = tool.label;
      b.dataset.tool = tool.id;
      b.title = `${tool.hint} (${tool.key.toUpperCase()})`;
      b.classList.toggle('on', app.tool === tool);
      b.onclick = () => app.setTool(tool);
      return b;
    }));
    for (const b of el.querySelectorAll('[data-dim]')) {
      b.classList.toggle('on', b.dataset.dim === app.dim);
      b.onclick = () => app.setDim(b.dataset.dim);
    }
    const type = app.tool?.type;
    const methods = type ? app.methodsFor(type) : [];
    const current = type ? app.methodFor(type) : null;
    $('.method').replaceChildren(...methods.map((m) => {
      const o = new Option(m.name, m.name, false, m === current);
      o.title = m.description;
      return o;
    }));
    $('.method').disabled = methods.length < 2;
  }

  function renderUndo() {
    const s = app.activeSegment;
    $('.undo').disabled = !s?.can_undo;
    $('.redo').disabled = !s?.can_redo;
    $('.export').disabled = !app.session;
  }

  $('.method').onchange = (e) => {
    app.preferredMethod[app.tool.type] = e.target.value;
    app.emit('method');
  };
  $('.window').onchange = (e) => {
    const name = e.target.value;
    if (name === 'auto') app.autoWindow();
    else if (PRESETS[name]) app.setWindow(PRESETS[name], name);
  };
  $('.undo').onclick = () => app.editor.undo();
  $('.redo').onclick = () => app.editor.redo();
  $('.export').onclick = () => app.exportLabels().catch((err) => app.report(err));
  $('.open').onclick = () => app.emit('open');
  $('.key').onclick = () => app.emit('need-key');
  $('.help').onclick = () => app.emit('help');
  app.addEventListener('capabilities', renderTools);
  app.addEventListener('tool', renderTools);
  app.addEventListener('segments', renderUndo);
  app.addEventListener('session', renderUndo);
  app.addEventListener('window', () => { $('.window').value = app.windowName; });
  renderUndo();
}
