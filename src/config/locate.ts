/**
 * Map TOML key paths to the 1-based line that defines them.
 *
 * smol-toml returns plain values without positions, so validation messages would lack lines.
 * This is a small structural scanner (not a validating parser): it follows table headers,
 * array-of-table headers, quoted and dotted keys, inline tables, arrays (element by element, also
 * over several lines), single- and multi-line strings and comments, and records where each key
 * path starts. It never throws: on text it does not understand it skips to the next line, since
 * smol-toml reports the syntax error itself.
 */

export type KeyPath = readonly (string | number)[];

export class KeyLocator {
  private readonly lines = new Map<string, number>();

  constructor(text: string) {
    try {
      new Scanner(text, (path, line) => {
        const k = pathKey(path);
        if (!this.lines.has(k)) this.lines.set(k, line);
      }).run();
    } catch {
      // Best effort only: whatever was recorded before the surprise stays usable.
    }
  }

  /** Line where exactly this path is defined, if it is. */
  exact(path: KeyPath): number | undefined {
    return this.lines.get(pathKey(path));
  }

  /**
   * Line of the path, else of its nearest defined ancestor: a missing key points at its table
   * header, an element of an inline value at the key that holds it.
   */
  line(path: KeyPath): number | undefined {
    for (let n = path.length; n > 0; n--) {
      const l = this.lines.get(pathKey(path.slice(0, n)));
      if (l !== undefined) return l;
    }
    return undefined;
  }
}

const pathKey = (path: KeyPath): string => path.map(String).join('\u0000');

const BARE_KEY = /[A-Za-z0-9_-]/;

class Scanner {
  private i = 0;
  private lineNo = 1;
  private readonly arrayTables = new Map<string, number>();

  constructor(
    private readonly s: string,
    private readonly record: (path: KeyPath, line: number) => void,
  ) {}

  run(): void {
    let table: KeyPath = [];
    while (true) {
      this.skipBlank();
      if (this.eof()) return;
      const line = this.lineNo;
      if (this.peek() === '[') {
        const isArray = this.s.startsWith('[[', this.i);
        this.i += isArray ? 2 : 1;
        const key = this.readKey();
        if (isArray) {
          const k = pathKey(key);
          const index = this.arrayTables.get(k) ?? 0;
          this.arrayTables.set(k, index + 1);
          this.define(key, line);
          table = [...key, index];
          this.record(table, line);
        } else {
          table = key;
          this.define(key, line);
        }
        this.skipLine();
        continue;
      }
      const start = this.i;
      const key = this.readKey();
      this.skipSpaces();
      if (key.length === 0 || this.peek() !== '=') {
        if (this.i === start) this.i++; // guarantee progress on garbage
        this.skipLine();
        continue;
      }
      this.i++; // '='
      const path = [...table, ...key];
      this.define(path, line);
      this.readValue(path);
      this.skipLine();
    }
  }

  /** Record a path and, for dotted keys, the tables it implicitly creates. */
  private define(path: KeyPath, line: number): void {
    for (let n = 1; n <= path.length; n++) this.record(path.slice(0, n), line);
  }

  private readKey(): string[] {
    const parts: string[] = [];
    while (!this.eof()) {
      this.skipSpaces();
      const c = this.peek();
      if (c === '"') parts.push(decodeBasic(this.readQuoted('"')));
      else if (c === "'") parts.push(this.readQuoted("'"));
      else if (BARE_KEY.test(c)) {
        const start = this.i;
        while (!this.eof() && BARE_KEY.test(this.peek())) this.i++;
        parts.push(this.s.slice(start, this.i));
      } else break;
      this.skipSpaces();
      if (this.peek() !== '.') break;
      this.i++;
    }
    return parts;
  }

  private readValue(path: KeyPath): void {
    this.skipSpaces();
    const c = this.peek();
    if (this.s.startsWith('"""', this.i) || this.s.startsWith("'''", this.i)) {
      this.readMultiline(this.s.slice(this.i, this.i + 3));
    } else if (c === '"' || c === "'") {
      this.readQuoted(c);
    } else if (c === '[') {
      this.i++;
      for (let index = 0; ; index++) {
        this.skipBlank();
        if (this.eof() || this.peek() === ']') break;
        const before = this.i;
        this.record([...path, index], this.lineNo);
        this.readValue([...path, index]);
        this.skipBlank();
        if (this.peek() === ',') this.i++;
        else if (this.i === before) return; // not a value we understand
        else if (this.peek() !== ']') return;
      }
      if (this.peek() === ']') this.i++;
    } else if (c === '{') {
      this.i++;
      while (true) {
        this.skipBlank();
        if (this.eof()) return;
        if (this.peek() === '}') {
          this.i++;
          return;
        }
        const line = this.lineNo;
        const key = this.readKey();
        this.skipSpaces();
        if (key.length === 0 || this.peek() !== '=') return;
        this.i++;
        this.define([...path, ...key], line);
        this.readValue([...path, ...key]);
        this.skipBlank();
        if (this.peek() === ',') this.i++;
      }
    } else {
      // number, boolean, date-time (may contain one space): up to a delimiter
      while (!this.eof() && !',]}\n#'.includes(this.peek())) this.i++;
    }
  }

  /** A one-line string; returns its raw body. Stops at the end of the line if unterminated. */
  private readQuoted(q: string): string {
    this.i++;
    const start = this.i;
    while (!this.eof()) {
      const c = this.peek();
      if (c === '\n') return this.s.slice(start, this.i);
      if (c === '\\' && q === '"') {
        this.i += 2;
        continue;
      }
      if (c === q) {
        this.i++;
        return this.s.slice(start, this.i - 1);
      }
      this.i++;
    }
    return this.s.slice(start);
  }

  private readMultiline(delim: string): void {
    this.i += 3;
    while (!this.eof()) {
      const c = this.peek();
      if (c === '\\' && delim === '"""') {
        if (this.s[this.i + 1] === '\n') this.lineNo++;
        this.i += 2;
        continue;
      }
      if (c === '\n') this.lineNo++;
      if (this.s.startsWith(delim, this.i)) {
        this.i += 3;
        // up to two quotes right before the closing delimiter belong to the string
        while (this.peek() === delim[0]) this.i++;
        return;
      }
      this.i++;
    }
  }

  private skipSpaces(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.i++;
  }

  /** Spaces, comments and newlines. */
  private skipBlank(): void {
    while (!this.eof()) {
      const c = this.peek();
      if (c === ' ' || c === '\t' || c === '\r') this.i++;
      else if (c === '#') while (!this.eof() && this.peek() !== '\n') this.i++;
      else if (c === '\n') {
        this.i++;
        this.lineNo++;
      } else return;
    }
  }

  /** Rest of the current line (a trailing comment or junk), including its newline. */
  private skipLine(): void {
    while (!this.eof() && this.peek() !== '\n') this.i++;
    if (!this.eof()) {
      this.i++;
      this.lineNo++;
    }
  }

  private peek(): string {
    return this.s.charAt(this.i);
  }

  private eof(): boolean {
    return this.i >= this.s.length;
  }
}

function decodeBasic(raw: string): string {
  try {
    const v: unknown = JSON.parse(`"${raw}"`);
    return typeof v === 'string' ? v : raw;
  } catch {
    return raw; // TOML escapes JSON lacks (\e, \xHH, \UXXXXXXXX): the raw text is close enough
  }
}
