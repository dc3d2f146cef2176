/** `ulysses-actors up`: runs a job. (Filled in by the control-plane work.) */
import { UsageError } from '../UsageError.js';

export async function upCommand(argv: string[]): Promise<number> {
  throw new UsageError('`up` is not available yet in this build');
}
