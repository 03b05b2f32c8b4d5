// The edit panel: the brush size (mm) of the paint and erase tools, and the adjust tool (grow
// or shrink the active segment's boundary by a signed amount: on the main view's slice in 2D,
// the whole mask in 3D). Shown while an editing tool is active (the adjust keys { and } work
// with any tool), when the server offers those interaction types.

const EDITING = new Set(['paint', 'erase', 'threshold', 'fill', 'select', 'brush']);

export function mountEdit(app, el) {
  el.innerHTML = `<h2>Edit</h2>
    <label class="radius" title="radius of the paint and erase brush (keys , and .)">brush
      <input type="range" class="radius-range" min="0.5" max="30" step="0.5">
      <input type="number" class="radius-mm" min="0.5" max="50" step="0.5"> mm</label>
    <div class="threshold" title="the threshold brush paints only voxels whose intensity lies in this window (HU for CT)">
      window <input type="number" class="low" step="10" aria-label="lowest intensity"> to
      <input type="number" class="high" step="10" aria-label="highest intensity"> <span class="unit">HU</span>
      <button class="from-window" title="take the grey window shown (centre ± width / 2)">= shown</button></div>
    <div class="adjust" title="grow or shrink the active segment's boundary (keys { and })">
      adjust <button class="shrink" title="shrink the boundary by the amount ({)">−</button>
      <input type="number" class="amount" min="1" max="100" step="1" value="10"> %
      <button class="grow" title="grow the boundary by the amount (})">+</button></div>`;
  const $ = (s) => el.querySelector(s);
  const { tools } = app;

  function render() {
    const types = new Set(app.caps?.interaction_types ?? []);
    const strokes = types.has('paint') || types.has('erase');
    $('.radius').hidden = !strokes;
    $('.threshold').hidden = !types.has('threshold') || tools.active?.type !== 'threshold';
    $('.threshold .unit').textContent = app.views.isCt ? 'HU' : '(image values)';
    $('.low').value = String(tools.threshold.low);
    $('.high').value = String(tools.threshold.high);
    $('.adjust').hidden = !types.has('adjust');
    el.hidden = (!strokes && !types.has('adjust')) || !EDITING.has(tools.active?.type);
    $('.radius-range').value = String(Math.min(30, tools.radiusMm));
    $('.radius-mm').value = String(tools.radiusMm);
  }

  $('.radius-range').oninput = (e) => tools.setRadius(Number(e.target.value));
  $('.radius-mm').onchange = (e) => tools.setRadius(Number(e.target.value) || tools.radiusMm);
  const setWindow = () => tools.setThreshold(Number($('.low').value), Number($('.high').value));
  $('.low').onchange = setWindow;
  $('.high').onchange = setWindow;
  $('.from-window').onclick = () => {
    const { center, width } = app.views.window;
    tools.setThreshold(Math.round(center - width / 2), Math.round(center + width / 2));
  };
  $('.grow').onclick = () => adjust(app, 1);
  $('.shrink').onclick = () => adjust(app, -1);
  app.addEventListener('capabilities', render);
  app.addEventListener('radius', render);
  app.addEventListener('tool', render);
  app.addEventListener('session', render);
  render();
  return { amount: () => Number($('.amount').value) / 100 };
}

/**
 * Grow (sign 1) or shrink (-1) the active segment by the panel's amount: on the main view's
 * slice in 2D, the whole mask in 3D. Resolves to true when applied.
 */
export function adjust(app, sign, amount = null) {
  const field = document.querySelector('#edit .amount');
  const relative = amount ?? Math.max(0.01, Math.min(1, Number(field?.value ?? 10) / 100));
  if (app.session.activeSegmentId === null) {
    app.notify('Adjust changes the active segment: make one first.');
    return Promise.resolve(false);
  }
  const view = app.views.main;
  return app.session.editor.track(app.session.editor.send(
    { type: 'adjust', amount: sign * relative }, { axis: view.axis, index: view.index }));
}
