// Foreground (left button) / background (right button) clicks.
import { registerTool } from './registry.js';

export default registerTool({
  id: 'click',
  label: 'Click',
  key: 'c',
  type: 'click',
  hint: 'left click inside the object, right click outside it',
  begin: ({ zyx, foreground }) => ({ zyx, foreground }),
  finish: (g) => ({ type: 'click', clicks: [{ zyx: g.zyx, foreground: g.foreground }] }),
});
