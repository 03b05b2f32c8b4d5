// The active segment's history (GET .../history): what made each revision, newest first;
// undone revisions (the redo stack) are struck through.

const SHOWN = 15;

export function mountHistory(app, el) {
  el.innerHTML = '<details open><summary>History</summary><ol class="history" reversed></ol></details>';
  const list = el.querySelector('.history');
  let shownFor = ''; // "segment@revision" the list was loaded for
  let timer = 0;

  async function load() {
    const segment = app.activeSegment;
    el.hidden = !segment;
    if (!segment) return;
    const key = `${app.session.id}/${segment.id}@${segment.revision}/${segment.can_redo}`;
    if (key === shownFor) return;
    shownFor = key;
    let history;
    try {
      history = await app.api.get(`/v1/sessions/${app.session.id}/segments/${segment.id}/history`);
    } catch (err) {
      if (err.status !== 404) app.report(err);
      return;
    }
    list.replaceChildren(...history.revisions.slice(-SHOWN).reverse().map((r) => {
      const li = document.createElement('li');
      li.value = r.revision;
      li.classList.toggle('head', r.is_head);
      li.classList.toggle('undone', r.undone);
      const what = r.interaction;
      const where = what.plane ? ` ${what.plane.axis}=${what.plane.index}` : '';
      const dim = what.type === 'create' ? '' : what.plane ? ' 2D' : ' 3D';
      const ms = Object.values(r.timings_ms ?? {}).reduce((a, b) => a + b, 0);
      li.textContent = `${what.type}${dim}${where} · ${r.voxels} voxels${ms ? ` · ${ms.toFixed(0)} ms` : ''}`;
      li.title = `${r.created_at}${what.method ? ` · ${what.method}` : ''}`;
      return li;
    }));
  }

  // changes come in bursts (click, undo, redo): load once they settle
  const later = () => {
    clearTimeout(timer);
    timer = setTimeout(load, 250);
  };
  app.addEventListener('segments', later);
  app.addEventListener('session', later);
}
