// The trained models the server has (/v1/models: name, dims, cue encoding, Dice) with the cue
// encoding to use, and the Points tool's controls (send, take back, start again).

import { diceSummary } from '../metrics.js';

export function mountModels(app, el) {
  // open where the screen has room for it (the list is information; closed it is one line)
  el.innerHTML = `<details class="models" ${window.innerHeight >= 880 ? 'open' : ''}><summary>Models <span class="count"></span></summary><ul class="model-list"></ul>
    <label class="encoding" hidden>cue encoding <select></select></label></details>
    <div class="points-panel" hidden><p class="hint points-state"></p>
      <button class="send primary" title="send the points (Enter)">Send points</button>
      <button class="undo-point" title="take the last point back (Backspace, right click)">Undo point</button>
      <button class="restart" title="place new points on the active segment">New points</button></div>`;
  const $ = (s) => el.querySelector(s);
  const { tools } = app;
  const models = () => app.models?.models ?? [];

  function render() {
    const list = models();
    $('.models').hidden = !list.length;
    $('.models .count').textContent = list.length ? `(${list.length})` : '';
    $('.model-list').replaceChildren(...list.map((m) => {
      const li = document.createElement('li');
      li.dataset.name = m.name;
      li.innerHTML = '<b></b> <span class="hint"></span>';
      li.querySelector('b').textContent = m.name;
      li.querySelector('.hint').textContent = [`${m.dims}D`, m.encoding, m.task,
        diceSummary(m.metrics)].filter(Boolean).join(' · ');
      const protocol = typeof m.metrics?.protocol === 'string' ? `\n${m.metrics.protocol}` : '';
      li.title = `${m.name} ${m.version}: input ${m.input_size.join('x')}, runs on ${m.provider}${protocol}`;
      return li;
    }));
    renderEncoding();
    renderPoints();
  }

  /** The cue encodings of the models for the points method (its `encoding` parameter). */
  function renderEncoding() {
    const method = tools.methodFor('points');
    const label = $('.encoding');
    const fallback = method?.params?.encoding;
    const encodings = [...new Set(models().filter((m) => m.task === method?.name).map((m) => m.encoding))];
    label.hidden = !method || fallback === undefined || !encodings.length;
    if (label.hidden) return;
    if (!encodings.includes(fallback)) encodings.unshift(fallback);
    const current = tools.methodParams[method.name]?.encoding ?? fallback;
    const select = label.querySelector('select');
    select.replaceChildren(...encodings.map((e) => {
      const dims = models().filter((m) => m.task === method.name && m.encoding === e).map((m) => `${m.dims}D`);
      return new Option(dims.length ? `${e} (${dims.join(', ')})` : `${e} (no model)`, e, false, e === current);
    }));
    select.onchange = () => {
      const mine = (tools.methodParams[method.name] ??= {});
      if (select.value === fallback) delete mine.encoding;
      else mine.encoding = select.value;
      app.emit('method');
    };
  }

  function renderPoints() {
    const tool = tools.active;
    const panel = $('.points-panel');
    panel.hidden = tool?.id !== 'points';
    if (panel.hidden) return;
    const n = tool.placed();
    const refining = tool.refineMode();
    $('.points-state').textContent = refining
      ? 'Left click adds to the object, right click removes from it (refinement). New points starts again.'
      : `${n} point${n === 1 ? '' : 's'} placed (at least ${tool.minPoints}): click just inside the ` +
        `object's edge near its extreme points (${tools.dim === '3d' ? 'on any slice, 3D' : 'on this slice, 2D'}), then Enter.`;
    $('.send').disabled = n < tool.minPoints;
    $('.undo-point').disabled = n === 0;
    $('.send').hidden = refining;
    $('.undo-point').hidden = refining;
    $('.restart').hidden = !refining;
  }

  $('.send').onclick = () => tools.active?.send?.(app);
  $('.undo-point').onclick = () => tools.active?.undoPoint?.();
  $('.restart').onclick = () => tools.active?.restart?.(app);
  for (const type of ['capabilities', 'tool', 'method']) app.addEventListener(type, render);
  app.addEventListener('points', renderPoints);
  app.addEventListener('segments', renderPoints);
}
