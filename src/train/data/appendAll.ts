/**
 * Appends one array to another element by element. `dst.push(...src)` passes every element as a
 * function argument, and V8 refuses calls with more than about 125,000 arguments (RangeError:
 * Maximum call stack size exceeded), so data-sized arrays must never be spread into a call.
 */
export function appendAll<T>(dst: T[], src: ArrayLike<T>): T[] {
  for (let i = 0; i < src.length; i++) dst.push(src[i]!);
  return dst;
}
