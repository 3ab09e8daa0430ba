// Registers the backends that have their own folder. Imported by the daemon
// only, so the CLI does not load them.
export function registerBackends(): void {}
