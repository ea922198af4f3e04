// Entry for 3d.html (served at /3d).
import './style.css';
import { mount3d } from './view3d';

mount3d(document.getElementById('app')!);
