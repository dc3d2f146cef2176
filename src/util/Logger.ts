/**
 * Leveled, structured logging injected into every component (`createLogger(level)`).
 * Lines go to stderr as `time level [scope] message {fields}`; tests pass a sink to capture them.
 * A logger never throws: a sink that fails is ignored.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export const isLogLevel = (s: string): s is LogLevel => s in order;

export interface LogRecord {
  level: Exclude<LogLevel, 'silent'>;
  scope: string;
  msg: string;
  fields?: Record<string, unknown>;
  time: string;
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(scope: string): Logger;
  readonly level: LogLevel;
}

export type LogSink = (r: LogRecord) => void;

export const stderrSink: LogSink = (r) => {
  const f = r.fields && Object.keys(r.fields).length ? ' ' + JSON.stringify(r.fields) : '';
  process.stderr.write(`${r.time} ${r.level.padEnd(5)} [${r.scope}] ${r.msg}${f}\n`);
};

export function createLogger(level: LogLevel = 'info', sink: LogSink = stderrSink, scope = 'ulysses'): Logger {
  const emit = (l: Exclude<LogLevel, 'silent'>) => (msg: string, fields?: Record<string, unknown>) => {
    if (order[l] < order[level]) return;
    try {
      sink({ level: l, scope, msg, fields, time: new Date().toISOString() });
    } catch {
      /* a broken sink must not break the caller */
    }
  };
  return {
    level,
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    child: (s: string) => createLogger(level, sink, `${scope}.${s}`),
  };
}
