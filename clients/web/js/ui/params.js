// Parameters of the selected method, generated from the defaults /v1/capabilities lists;
// changed values go with every interaction as `params` overrides.

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
    el.querySelector('.method-description').textContent = `${method.name}: ${method.description}`;
    const overrides = tools.methodParams[method.name] ?? {};
    box.replaceChildren(...Object.entries(method.params).map(([name, fallback]) => {
      const label = document.createElement('label');
      label.className = 'param';
      const input = document.createElement('input');
      input.name = name;
      const value = name in overrides ? overrides[name] : fallback;
      if (typeof fallback === 'boolean') {
        input.type = 'checkbox';
        input.checked = value;
      } else {
        input.type = typeof fallback === 'number' ? 'number' : 'text';
        if (input.type === 'number') input.step = 'any';
        input.value = String(value);
      }
      input.classList.toggle('changed', name in overrides);
      input.onchange = () => {
        const v = input.type === 'checkbox' ? input.checked
          : input.type === 'number' ? Number(input.value) : input.value;
        const mine = (tools.methodParams[method.name] ??= {});
        if (v === fallback || (input.type === 'number' && !Number.isFinite(v))) delete mine[name];
        else mine[name] = v;
        render();
      };
      label.append(Object.assign(document.createElement('span'), { textContent: name }), input);
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
