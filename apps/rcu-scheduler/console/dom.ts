// A few DOM helpers, so the page's modules read as what they show.

type Child = Node | string | number | null | undefined | false;
type Attributes = Record<string, string | number | boolean | null | undefined>;

/** An element with attributes (`class` included; `true` sets a bare attribute) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    element.setAttribute(name, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
}

/** Replaces every child of `parent`. */
export function replaceChildren(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}

function append(parent: Element, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : String(child));
  }
}

/** The element with `id`, which the page must have. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`the page has no #${id}`);
  return element as T;
}

/** A table with a caption, column headers and rows; one column (default the first) heads each row. */
export function table(
  caption: string | null,
  headers: readonly string[],
  rows: readonly Child[][],
  options: { captionHidden?: boolean; className?: string; rowHeader?: number } = {},
): HTMLTableElement {
  const rowHeader = options.rowHeader ?? 0;
  return h(
    'table',
    { class: options.className },
    caption === null
      ? null
      : h('caption', { class: options.captionHidden ? 'visually-hidden' : null }, caption),
    h('thead', {}, h('tr', {}, ...headers.map((text) => h('th', { scope: 'col' }, text)))),
    h(
      'tbody',
      {},
      ...rows.map((cells) =>
        h(
          'tr',
          {},
          ...cells.map((cell, i) => (i === rowHeader ? h('th', { scope: 'row' }, cell) : h('td', {}, cell))),
        ),
      ),
    ),
  );
}

/** A host or round state as text and colour together (colour is never the only signal). */
export function stateBadge(state: string): HTMLSpanElement {
  return h('span', { class: `state state-${state}` }, state);
}
