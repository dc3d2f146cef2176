/** The environment variable that carries a fault plan's rank-side faults to the ranks (JSON, set by the chaos harness). */
export const CHAOS_ENV = 'ULYSSES_CHAOS';
