/**
 * The one error type of the data plane: a malformed dataset, row or field. It names the file, the
 * row (1-based line for JSONL/text, 0-based index for a JSON array) and the field, so the user can
 * fix the data without a debugger. It must never be thrown for a programming error of ours.
 */
export interface DataErrorWhere {
  file?: string;
  /** 1-based line (JSONL, text) or array index (JSON); see `rowKind`. */
  row?: number;
  rowKind?: 'line' | 'index';
  field?: string;
}

export class DataError extends Error {
  readonly code = 'ERR_DATA' as const;
  readonly file: string | undefined;
  readonly row: number | undefined;
  readonly field: string | undefined;
  constructor(message: string, where: DataErrorWhere = {}, options?: { cause?: unknown }) {
    const parts: string[] = [];
    if (where.file !== undefined) parts.push(where.file);
    if (where.row !== undefined) parts.push(`${where.rowKind ?? 'line'} ${where.row}`);
    if (where.field !== undefined) parts.push(`field '${where.field}'`);
    super(parts.length > 0 ? `${parts.join(', ')}: ${message}` : message, options);
    this.name = 'DataError';
    this.file = where.file;
    this.row = where.row;
    this.field = where.field;
  }
}
