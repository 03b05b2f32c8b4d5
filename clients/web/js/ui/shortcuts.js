// Keyboard shortcuts: one table that both binds the keys and writes the help overlay.

export const MOUSE = [
  ['left click / drag', 'tool: inside the object (foreground)'],
  ['right click / drag', 'tool: outside the object (background)'],
  ['wheel', 'next / previous slice'],
  ['Ctrl + wheel', 'zoom at the cursor'],
  ['middle drag, Space + drag or Ctrl + drag', 'pan'],
  ['Alt + drag', 'window (left-right) and level (up-down)'],
  ['Shift + click', 'move the other views to this point'],
];

function bindings(app, overlay) {
  const view = () => app.focusView;
  const tools = (app.tools ?? []).map((t) => [t.key, `${t.label} tool: ${t.hint}`, () => app.setTool(t)]);
  return [
    ['?', 'show / hide this help', () => overlay.toggle()],
    ...tools,
    ['d', '2D (this slice) / 3D (the volume)', () => app.setDim(app.dim === '2d' ? '3d' : '2d')],
    ['Ctrl+z', 'undo', () => app.editor.undo()],
    ['Ctrl+y', 'redo (also Ctrl+Shift+Z)', () => app.editor.redo()],
    ['ArrowUp', 'next slice (also ArrowRight)', () => view().setIndex(view().index + 1)],
    ['ArrowDown', 'previous slice (also ArrowLeft)', () => view().setIndex(view().index - 1)],
    ['PageUp', '10 slices on', () => view().setIndex(view().index + 10)],
    ['PageDown', '10 slices back', () => view().setIndex(view().index - 10)],
    ['l', 'lock / unlock the slice of the view', () => view().setLocked(!view().locked)],
    ['1', 'axial view as main view', () => app.setMainView('z')],
    ['2', 'coronal view as main view', () => app.setMainView('y')],
    ['3', 'sagittal view as main view', () => app.setMainView('x')],
    ['v', 'one view / three views', () => app.toggleSingle()],
    ['x', 'show / hide the crosshair', () => app.toggleCrosshair()],
    ['+', 'zoom in', () => view().zoomBy(1.25)],
    ['-', 'zoom out', () => view().zoomBy(0.8)],
    ['0', 'fit the image', () => view().resetView()],
    ['w', 'next window preset', () => app.emit('next-window')],
    ['a', 'automatic window', () => app.autoWindow()],
    ['n', 'new segment', () => app.createSegment().catch((e) => app.report(e))],
    ['[', 'previous segment', () => cycleSegment(app, -1)],
    [']', 'next segment', () => cycleSegment(app, 1)],
    ['h', 'hide / show the active segment', () => {
      const s = app.activeSegment;
      if (s) app.styleSegment(s.id, { visible: !s.visible });
    }],
    ['e', 'export the label map (NIfTI)', () => app.exportLabels().catch((e) => app.report(e))],
    ['o', 'open or upload an image', () => app.emit('open')],
    ['Escape', 'close this help / the open screen', () => { overlay.hide(); app.emit('escape'); }],
  ];
}

const ALIASES = { ArrowRight: 'ArrowUp', ArrowLeft: 'ArrowDown', 'Ctrl+Z': 'Ctrl+y', '=': '+', F1: '?' };

function cycleSegment(app, step) {
  const n = app.segments.length;
  if (!n) return;
  const i = app.segments.findIndex((s) => s.id === app.activeSegmentId);
  app.setActiveSegment(app.segments[(i + step + n) % n].id);
}

function keyName(e) {
  if (e.ctrlKey || e.metaKey) return `Ctrl+${e.shiftKey ? e.key.toUpperCase() : e.key.toLowerCase()}`;
  return e.key.length === 1 ? e.key.toLowerCase() : e.key;
}

export function mountShortcuts(app, overlayEl) {
  const overlay = {
    toggle() { this.visible ? this.hide() : this.show(); },
    show() {
      const keys = bindings(app, overlay).map(([k, what]) => `<tr><td><kbd>${k}</kbd></td><td>${what}</td></tr>`);
      const mouse = MOUSE.map(([k, what]) => `<tr><td>${k}</td><td>${what}</td></tr>`);
      overlayEl.innerHTML = `<div class="card"><h2>Mouse</h2><table>${mouse.join('')}</table>
        <h2>Keys</h2><table>${keys.join('')}</table><p>Press ? or Esc to close.</p></div>`;
      overlayEl.hidden = false;
      this.visible = true;
    },
    hide() { overlayEl.hidden = true; this.visible = false; },
    visible: false,
  };
  overlayEl.addEventListener('click', () => overlay.hide());
  app.addEventListener('help', () => overlay.toggle());
  window.addEventListener('keydown', (e) => {
    app.keys.add(e.key);
    const target = e.target;
    if (target.closest?.('input[type=text], input:not([type]), textarea, select, dialog')) return;
    let name = keyName(e);
    name = ALIASES[name] ?? name;
    const hit = bindings(app, overlay).find(([k]) => k === name);
    if (!hit) return;
    if (!app.session && !['?', 'o', 'Escape'].includes(name)) return;
    e.preventDefault();
    hit[2]();
  });
  window.addEventListener('keyup', (e) => app.keys.delete(e.key));
  window.addEventListener('blur', () => app.keys.clear());
  return overlay;
}
