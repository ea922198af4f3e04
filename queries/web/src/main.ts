// Entry for index.html. The server may serve this same page at /3d, so route
// on the path: the 3D bundle (three.js) is only fetched for the 3D view.
import './style.css';
import { mountDashboard } from './dashboard';

const app = document.getElementById('app')!;
if (/^\/3d\/?$/.test(location.pathname)) {
  void import('./view3d').then((m) => m.mount3d(app));
} else {
  mountDashboard(app);
}
