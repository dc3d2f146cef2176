/**
 * Training items addressed by index: an array (small datasets, built-in tasks) or a token cache
 * that materializes item i from its mapped files on demand, so a dataset of millions of items
 * never becomes millions of JS objects. Arrays satisfy it as they are. Types only.
 */
export interface ItemSource<T> {
  readonly length: number;
  /** Item `index` (0 <= index < length); undefined outside. */
  at(index: number): T | undefined;
}
