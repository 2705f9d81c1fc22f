/** Routes of envd's filesystem service (filesystem.Filesystem over Connect). Being written: until then every call here is the router's 501. */
import type { E2bRoute } from './e2b-http.js';
import type { E2bState } from './e2b-state.js';

export function filesystemRoutes(_state: E2bState): E2bRoute[] {
  return [];
}
