/**
 * The one error type of the data plane: a malformed dataset, row or field. It names the file, the
 * row (1-based line for JSONL/text, 0-based index for a JSON array), the byte offset where the row
 * starts (or where the file stops making sense) and the field, so the user can fix the data
 * without a debugger. Worker threads send it across as `toWire()` and the receiving side rebuilds
 * the same error with `fromWire()`. It must never be thrown for a programming error of ours.
 */
export interface DataErrorWhere {
  file?: string;
  /** 1-based line (JSONL, text) or array index (JSON); see `rowKind`. */
  row?: number;
  rowKind?: 'line' | 'index';
  /** Byte offset in the file (of the row's first byte, or of the offending byte). */
  offset?: number;
  field?: string;
}

/** A DataError as plain data (structured-clone safe), for worker messages. */
export interface DataErrorWire {
  kind: 'DataError';
  detail: string;
  where: DataErrorWhere;
}

export class DataError extends Error {
  readonly code = 'ERR_DATA' as const;
  readonly file: string | undefined;
  readonly row: number | undefined;
  readonly offset: number | undefined;
  readonly field: string | undefined;
  /** The message without the location prefix. */
  readonly detail: string;
  readonly where: DataErrorWhere;
  constructor(message: string, where: DataErrorWhere = {}, options?: { cause?: unknown }) {
    const parts: string[] = [];
    if (where.file !== undefined) parts.push(where.file);
    if (where.row !== undefined) parts.push(`${where.rowKind ?? 'line'} ${where.row}`);
    if (where.offset !== undefined) parts.push(`byte ${where.offset}`);
    if (where.field !== undefined) parts.push(`field '${where.field}'`);
    super(parts.length > 0 ? `${parts.join(', ')}: ${message}` : message, options);
    this.name = 'DataError';
    this.file = where.file;
    this.row = where.row;
    this.offset = where.offset;
    this.field = where.field;
    this.detail = message;
    this.where = { ...where };
  }

  /** This error with the location filled in where it is not known yet (callers add what they know). */
  at(more: DataErrorWhere): DataError {
    return new DataError(this.detail, { ...more, ...definedOnly(this.where) }, { cause: this.cause });
  }

  toWire(): DataErrorWire {
    return { kind: 'DataError', detail: this.detail, where: { ...this.where } };
  }

  static fromWire(w: DataErrorWire): DataError {
    return new DataError(w.detail, w.where);
  }
}

function definedOnly(w: DataErrorWhere): DataErrorWhere {
  return Object.fromEntries(Object.entries(w).filter(([, v]) => v !== undefined)) as DataErrorWhere;
}
