// Parameters of the selected method, generated from the defaults /v1/capabilities lists, with
// the unit, range and meaning of the known ones (paramspec.js); changed values go with every
// interaction as `params` overrides. A number outside its range is brought back into it.

import { paramSpec } from '../paramspec.js';

export function mountParams(app, el) {
  el.innerHTML = `<details><summary>Method parameters</summary>
    <p class="hint method-description"></p><div class="params"></div>
    <button class="reset">Reset to defaults</button></details>`;
  const box = el.querySelector('.params');
  const { tools } = app;

  function render() {
    const method = tools.active ? tools.methodFor(tools.active.type) : null;
    el.hidden = !method || !Object.keys(method.params ?? {}).length;
    if (!method) return;
    Object.assign(el.querySelector('.method-description'), {
      textContent: `${method.name}: ${method.description}`, title: method.description });
    const overrides = tools.methodParams[method.name] ?? {};
    box.replaceChildren(...Object.entries(method.params).map(([name, fallback]) => {
      const label = document.createElement('label');
      label.className = 'param';
      const input = document.createElement('input');
      input.name = name;
      const value = name in overrides ? overrides[name] : fallback;
      const spec = typeof fallback === 'number' ? paramSpec(name) : null;
      if (typeof fallback === 'boolean') {
        input.type = 'checkbox';
        input.checked = value;
      } else {
        input.type = typeof fallback === 'number' ? 'number' : 'text';
        if (input.type === 'number') input.step = spec?.step ? String(spec.step) : 'any';
        if (spec) Object.assign(input, { min: String(spec.min), max: String(spec.max) });
        input.value = String(value);
      }
      input.classList.toggle('changed', name in overrides);
      input.onchange = () => {
        let v = input.type === 'checkbox' ? input.checked
          : input.type === 'number' ? Number(input.value) : input.value;
        if (spec && input.value !== '' && Number.isFinite(v) && (v < spec.min || v > spec.max)) {
          v = Math.max(spec.min, Math.min(spec.max, v));
          app.notify(`${name} is kept within ${spec.min}–${spec.max}${spec.unit ? ` ${spec.unit}` : ''}.`);
        }
        const mine = (tools.methodParams[method.name] ??= {});
        if (v === fallback || (input.type === 'number' && !Number.isFinite(v))) delete mine[name];
        else mine[name] = v;
        render();
      };
      const unit = Object.assign(document.createElement('span'), { className: 'unit', textContent: spec?.unit ?? '' });
      label.title = spec ? `${name}: ${spec.hint} (${spec.min}–${spec.max}${spec.unit ? ` ${spec.unit}` : ''}; ` +
        `default ${fallback})` : `${name} (default ${String(fallback)})`;
      label.append(Object.assign(document.createElement('span'), { className: 'name', textContent: name }), input, unit);
      return label;
    }));
  }

  el.querySelector('.reset').onclick = () => {
    const method = tools.active && tools.methodFor(tools.active.type);
    if (method) delete tools.methodParams[method.name];
    render();
  };
  app.addEventListener('tool', render);
  app.addEventListener('capabilities', render);
  app.addEventListener('method', render);
}
