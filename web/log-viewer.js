// The job page's log viewer: lines as text, capped, and auto-scroll that follows the newest line until the
// reader scrolls up, and follows again once they are back at the bottom (or press "Jump to the latest line").

import { el } from './util.js';

// The viewer keeps this many lines; older ones are dropped from the top (a long run logs for hours).
const MAX_LINES = 5000;
// A reader within this many pixels of the bottom is "at the bottom": auto-scroll resumes.
const BOTTOM_SLACK_PX = 8;

// The part of `incoming` that `current` does not already end with. Used where the two may overlap (a
// re-read tail, lines pushed while the first read was in flight); lines pushed later are appended whole.
export function unseenPart(current, incoming) {
  const most = Math.min(current.length, incoming.length);
  for (let k = most; k > 0; k -= 1) {
    const start = current.length - k;
    let same = true;
    for (let i = 0; i < k && same; i += 1) same = current[start + i] === incoming[i];
    if (same) return incoming.slice(k);
  }
  return incoming;
}

// `box` is the scrolling element, `latest` the "Jump to the latest line" button; `onChange` is told when
// the lines or the auto-scroll change, so that the page can say what the viewer is doing.
export function createLogViewer({ box, latest, onChange }) {
  let lines = [];
  let autoScroll = true;

  function scrollToEnd() {
    box.scrollTop = box.scrollHeight;
  }

  function paintAutoScroll() {
    box.dataset.autoscroll = autoScroll ? 'true' : 'false';
    latest.hidden = autoScroll;
  }

  function lineNode(line) {
    return el('div', { class: 'log-line' }, line);
  }

  function clear() {
    lines = [];
    autoScroll = true;
    box.replaceChildren();
    paintAutoScroll();
  }

  function replace(next) {
    lines = next.slice(-MAX_LINES);
    box.replaceChildren(...lines.map(lineNode));
    if (autoScroll) scrollToEnd();
    onChange();
  }

  function append(more) {
    if (!more.length) return;
    lines.push(...more);
    const fragment = document.createDocumentFragment();
    for (const line of more) fragment.append(lineNode(line));
    box.append(fragment);
    const excess = lines.length - MAX_LINES;
    if (excess > 0) {
      lines.splice(0, excess);
      for (let i = 0; i < excess && box.firstChild; i += 1) box.firstChild.remove();
    }
    if (autoScroll) scrollToEnd();
    onChange();
  }

  box.addEventListener(
    'scroll',
    () => {
      const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight <= BOTTOM_SLACK_PX;
      if (atBottom === autoScroll) return;
      autoScroll = atBottom; // scrolled up: stay put; back at the bottom: follow again
      paintAutoScroll();
      onChange();
    },
    { passive: true },
  );
  latest.addEventListener('click', () => {
    autoScroll = true;
    scrollToEnd();
    paintAutoScroll();
    onChange();
    box.focus();
  });

  return {
    clear,
    replace,
    append,
    appendUnseen: (more) => append(unseenPart(lines, more)),
    lines: () => lines,
    autoScroll: () => autoScroll,
  };
}
