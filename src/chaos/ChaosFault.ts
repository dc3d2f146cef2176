/** A coded error a ChaosHooks implementation throws to inject a failure (the rank reports it with its code). */
export class ChaosFault extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'ChaosFault';
  }
}
