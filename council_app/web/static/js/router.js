// A tiny history-API router. It knows URLs and page generations, not views: app.js hands
// it the function that draws a location, so this module imports no view (no cycles).

let generation = 0;
let cleanups = [];
let draw = async () => {};
const listeners = [];

/** The session id and view named by the current URL (/s/<id>[/<view>]). */
export function parseLocation() {
  const match = /^\/s\/([^/]+)(?:\/([a-z]+))?\/?$/.exec(window.location.pathname);
  if (!match) return { sessionId: null, view: null };
  return { sessionId: decodeURIComponent(match[1]), view: match[2] || null };
}

/** The page generation: bumps on every navigation, so late answers can tell they are stale. */
export function currentGeneration() {
  return generation;
}

/** Run fn when the person leaves the current page (stop polls, observers). */
export function onLeave(fn) {
  cleanups.push(fn);
}

/** Called with the parsed location before each page draws (the sidebar highlights it). */
export function onRoute(fn) {
  listeners.push(fn);
}

/** Go to an in-app path without reloading; the back button works as usual. */
export function navigate(path, { replace = false, state = null } = {}) {
  if (replace) window.history.replaceState(state, "", path);
  else window.history.pushState(state, "", path);
  return route();
}

function runCleanups() {
  for (const fn of cleanups) {
    try {
      fn();
    } catch {
      /* a view's cleanup must not break navigation */
    }
  }
  cleanups = [];
}

/** Draw the current location. */
export async function route() {
  runCleanups();
  generation += 1;
  const gen = generation;
  const where = parseLocation();
  for (const fn of listeners) fn(where);
  await draw(where, gen);
  // After an in-app navigation, move focus to the new page's heading (as a page load
  // would reset it); on the first load leave it alone so Tab reaches the skip link.
  const heading = document.querySelector("#view h1");
  if (heading && gen === generation && gen > 1 && window.history.state?.focus !== false) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

/** Install the drawing function, intercept in-app links and the back button. */
export function startRouter(drawLocation) {
  draw = drawLocation;
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[href]");
    if (!link || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    if (link.target || link.hasAttribute("download") || link.origin !== window.location.origin) return;
    if (!(link.pathname === "/" || link.pathname.startsWith("/s/"))) return;
    // In-page anchors (the skip link, markdown "#..." links) keep their native behaviour.
    if (link.hash && link.pathname === window.location.pathname) return;
    event.preventDefault();
    if (link.pathname + link.search !== window.location.pathname + window.location.search) {
      navigate(link.pathname + link.search);
    } else {
      route();
    }
  });
  window.addEventListener("popstate", () => route());
  return route();
}
