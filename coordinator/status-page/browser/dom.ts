/// <reference lib="dom" />
/**
 * Browser code. Every module in this folder exports factories that are sent to the browser as
 * their source text (see ../client.ts): a factory may use only its parameters, what it declares
 * inside, and the browser's globals; imports are for types.
 */

/** `text` becomes textContent, `className` the class; null and undefined leave an attribute out. */
export type Attributes = Readonly<Record<string, string | number | boolean | null | undefined>>;
export type Child = Node | string | null | undefined | false;

/**
 * Builds elements with createElement and textContent only: no value from an agent, a registry or
 * an operator ever goes through innerHTML.
 */
export function createDom(document: Document) {
  function byId(id: string): HTMLElement {
    const node = document.getElementById(id);
    if (node === null) throw new Error(`the page has no #${id}`);
    return node;
  }

  function el<Tag extends keyof HTMLElementTagNameMap>(tag: Tag, attributes?: Attributes, ...children: Child[]): HTMLElementTagNameMap[Tag] {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes ?? {})) {
      if (value === undefined || value === null) continue;
      if (key === 'text') node.textContent = String(value);
      else if (key === 'className') node.className = String(value);
      else node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
    }
    return node;
  }

  function replaceAll(parent: Element, children: readonly Node[]): void {
    const fragment = document.createDocumentFragment();
    for (const child of children) fragment.appendChild(child);
    parent.replaceChildren(fragment);
  }

  return { byId, el, replaceAll, text: (value: string) => document.createTextNode(value) };
}
export type Dom = ReturnType<typeof createDom>;

/** The toast at the bottom of the page: one message at a time, gone after five seconds. */
export function createToast(dom: Dom) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return function showToast(text: string, bad: boolean): void {
    const toast = dom.byId('toast');
    toast.textContent = text;
    toast.className = 'toast show' + (bad ? ' toast-bad' : '');
    clearTimeout(timer);
    timer = setTimeout(() => {
      toast.className = 'toast';
    }, 5000);
  };
}
export type ShowToast = ReturnType<typeof createToast>;
