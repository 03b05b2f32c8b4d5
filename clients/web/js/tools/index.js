// Every tool module; each registers itself. Add a new tool's import here.
import './click.js';
import './scribble.js';
import './box.js';
import './points.js';
import './manual.js';
import './editing.js';

export { allTools } from './registry.js';
