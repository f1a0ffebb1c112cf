/**
 * The end of the generated text that fits in `maxRows` rows of `width` columns, cut into rows here
 * (as a terminal would wrap it) so the row count is exact and the live frame never outgrows the
 * screen: Ink redraws everything when it does, which flickers. Wide characters may take two columns,
 * so callers keep a row of margin.
 */
export function tailText(text: string, width: number, maxRows: number): string {
  if (maxRows <= 0 || text === "") return "";
  const cols = Math.max(1, width);
  // Only the end can be shown; never split more than a screenful of the text.
  const limit = maxRows * (cols + 1) * 2;
  const window = text.length > limit ? text.slice(-limit) : text;
  const lines = window.split("\n");
  const rows: string[] = [];
  for (let i = lines.length - 1; i >= 0 && rows.length < maxRows; i--) {
    const chars = [...(lines[i] as string)];
    const lineRows: string[] = [];
    for (let at = 0; at < chars.length; at += cols) lineRows.push(chars.slice(at, at + cols).join(""));
    if (lineRows.length === 0) lineRows.push("");
    rows.unshift(...lineRows.slice(-(maxRows - rows.length)));
  }
  return rows.join("\n");
}
