// A tiny XML writer and reader (no dependency): enough for libvirt snippets and for comparing documents.

export interface XmlElement {
  name: string;
  attrs: [string, string][];
  children: XmlNode[];
}
export type XmlNode = XmlElement | { text: string } | { comment: string };

export function el(name: string, attrs: Record<string, string | number | undefined> = {}, children: XmlNode[] = []): XmlElement {
  const a: [string, string][] = [];
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) a.push([k, String(v)]);
  return { name, attrs: a, children };
}

export function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');
}

/** A comment body that is safe inside <!-- -->: no '--' and no trailing '-'. */
function commentSafe(s: string): string {
  return s.replace(/--/g, '- -').replace(/-$/, '- ');
}

export function renderXml(node: XmlNode, indent = ''): string {
  if ('text' in node) return indent + xmlEscape(node.text);
  if ('comment' in node) {
    const lines = commentSafe(node.comment).split('\n');
    if (lines.length === 1) return `${indent}<!-- ${lines[0]} -->`;
    return `${indent}<!--\n${lines.map((l) => (l ? indent + '  ' + l : '')).join('\n')}\n${indent}-->`;
  }
  const attrs = node.attrs.map(([k, v]) => ` ${k}='${xmlEscape(v)}'`).join('');
  if (node.children.length === 0) return `${indent}<${node.name}${attrs}/>`;
  if (node.children.length === 1 && 'text' in node.children[0]!) {
    return `${indent}<${node.name}${attrs}>${xmlEscape((node.children[0] as { text: string }).text)}</${node.name}>`;
  }
  const inner = node.children.map((c) => renderXml(c, indent + '  ')).join('\n');
  return `${indent}<${node.name}${attrs}>\n${inner}\n${indent}</${node.name}>`;
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|lt|gt|amp|quot|apos);/g, (_m, e: string) => {
    if (e.startsWith('#x')) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return ENTITIES[e]!;
  });
}

/**
 * Parse an XML document (or a sequence of top-level nodes) into nodes. Handles the prolog,
 * comments, CDATA, DOCTYPE, both quote styles and the five predefined entities; rejects
 * mismatched tags. Not a validating parser.
 */
export function parseXml(src: string): XmlNode[] {
  let i = 0;
  const root: XmlElement = { name: '#root', attrs: [], children: [] };
  const stack: XmlElement[] = [root];
  const fail = (msg: string): never => {
    const line = src.slice(0, i).split('\n').length;
    throw new Error(`XML: ${msg} at line ${line}`);
  };
  while (i < src.length) {
    const top = stack[stack.length - 1]!;
    if (src.startsWith('<!--', i)) {
      const end = src.indexOf('-->', i + 4);
      if (end < 0) fail('unterminated comment');
      top.children.push({ comment: src.slice(i + 4, end) });
      i = end + 3;
    } else if (src.startsWith('<![CDATA[', i)) {
      const end = src.indexOf(']]>', i);
      if (end < 0) fail('unterminated CDATA');
      top.children.push({ text: src.slice(i + 9, end) });
      i = end + 3;
    } else if (src.startsWith('<?', i)) {
      const end = src.indexOf('?>', i);
      if (end < 0) fail('unterminated processing instruction');
      i = end + 2;
    } else if (src.startsWith('<!', i)) {
      const end = src.indexOf('>', i);
      if (end < 0) fail('unterminated declaration');
      i = end + 1;
    } else if (src.startsWith('</', i)) {
      const m = /^<\/([A-Za-z_][\w.:-]*)\s*>/.exec(src.slice(i));
      if (!m) fail('bad end tag');
      if (stack.length === 1 || top.name !== m![1]) fail(`</${m![1]}> does not close <${top.name}>`);
      stack.pop();
      i += m![0].length;
    } else if (src[i] === '<') {
      const m = /^<([A-Za-z_][\w.:-]*)/.exec(src.slice(i));
      if (!m) fail('bad start tag');
      const e: XmlElement = { name: m![1]!, attrs: [], children: [] };
      i += m![0].length;
      for (;;) {
        const ws = /^\s*/.exec(src.slice(i))![0];
        i += ws.length;
        if (src.startsWith('/>', i)) {
          i += 2;
          top.children.push(e);
          break;
        }
        if (src[i] === '>') {
          i += 1;
          top.children.push(e);
          stack.push(e);
          break;
        }
        const a = /^([A-Za-z_][\w.:-]*)\s*=\s*("([^"]*)"|'([^']*)')/.exec(src.slice(i));
        if (!a || ws.length === 0) fail(`bad attribute in <${e.name}>`);
        if (e.attrs.some(([k]) => k === a![1])) fail(`duplicate attribute ${a![1]} in <${e.name}>`);
        e.attrs.push([a![1]!, decodeEntities(a![3] ?? a![4] ?? '')]);
        i += a![0].length;
      }
    } else {
      const end = src.indexOf('<', i);
      const raw = src.slice(i, end < 0 ? src.length : end);
      top.children.push({ text: decodeEntities(raw) });
      i += raw.length;
    }
  }
  if (stack.length !== 1) fail(`<${stack[stack.length - 1]!.name}> is not closed`);
  return root.children;
}

/** The single root element of a document. */
export function parseXmlElement(src: string): XmlElement {
  const roots = parseXml(src).filter((n): n is XmlElement => 'name' in n);
  if (roots.length !== 1) throw new Error(`XML: expected one root element, found ${roots.length}`);
  return roots[0]!;
}

/**
 * A canonical form for comparing documents: comments and whitespace-only text dropped, text trimmed,
 * attributes sorted, element order kept.
 */
export function canonicalXml(src: string | XmlElement): string {
  const e = typeof src === 'string' ? parseXmlElement(src) : src;
  const walk = (n: XmlElement, ind: string): string => {
    const attrs = [...n.attrs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => ` ${k}="${xmlEscape(v)}"`).join('');
    const kids: string[] = [];
    for (const c of n.children) {
      if ('name' in c) kids.push(walk(c, ind + '  '));
      else if ('text' in c && c.text.trim()) kids.push(ind + '  ' + xmlEscape(c.text.trim()));
    }
    return kids.length ? `${ind}<${n.name}${attrs}>\n${kids.join('\n')}\n${ind}</${n.name}>` : `${ind}<${n.name}${attrs}/>`;
  };
  return walk(e, '');
}

export function attr(e: XmlElement, name: string): string | undefined {
  return e.attrs.find(([k]) => k === name)?.[1];
}
export function childElements(e: XmlElement, name?: string): XmlElement[] {
  return e.children.filter((c): c is XmlElement => 'name' in c && (name === undefined || c.name === name));
}
export function firstChild(e: XmlElement | undefined, ...pathNames: string[]): XmlElement | undefined {
  let cur = e;
  for (const n of pathNames) cur = cur ? childElements(cur, n)[0] : undefined;
  return cur;
}
