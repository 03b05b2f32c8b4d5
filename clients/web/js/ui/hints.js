// The hints panel: the active segment's hints (app.hints, js/hints.js) as a ranked list, each
// with what to do there, its size in mL and its likelihood; clicking an entry jumps to its
// centre. Shown once hints were asked for (J or the toolbar's Hints), until closed; while shown
// the hints follow the active segment's head (js/hints.js: HintLayer.follow).

import { HINT_COLORS, hintText, hintTitle } from '../hints.js';

export function mountHints(app, el) {
  el.innerHTML = `<h2 class="with-action">Hints <span class="actions">
      <button class="refresh" title="look again at the active segment's current mask (J)">↻</button>
      <button class="close" title="hide the hints">✕</button></span></h2>
    <p class="hint state" role="status"></p><ol class="hint-list"></ol>`;
  const $ = (s) => el.querySelector(s);
  const layer = app.hints;

  function render() {
    el.hidden = layer.state === 'idle';
    $('.state').textContent = layer.note;
    el.dataset.state = layer.state;
    $('.refresh').disabled = layer.state === 'loading';
    $('.hint-list').replaceChildren(...layer.hints.map((hint) => {
      const li = document.createElement('li');
      li.dataset.rank = String(hint.rank);
      li.className = hint.kind;
      li.classList.toggle('selected', hint.rank === layer.selected);
      const b = document.createElement('button');
      b.innerHTML = '<span class="rank"></span> <span class="what"></span>';
      b.querySelector('.rank').textContent = String(hint.rank);
      b.querySelector('.rank').style.background = HINT_COLORS[hint.kind] ?? HINT_COLORS.missing;
      b.querySelector('.what').textContent = hintText(hint);
      b.title = `${hintTitle(hint)}\nclick: go there`;
      b.onclick = () => layer.jump(hint.rank);
      li.append(b);
      return li;
    }));
  }

  $('.refresh').onclick = () => layer.fetch();
  $('.close').onclick = () => layer.close();
  app.addEventListener('hints', render);
  render();
}
