// Preloaded (`node --import`) into a real service process by the crash-policy tests. On SIGUSR2 it
// raises what nobody handles, the way a library's stray rejection or a throwing callback would:
// PROVOKE_CRASH=rejection (default) leaves two promises rejected with nobody awaiting them,
// PROVOKE_CRASH=exception throws twice from the event loop. The policy must log only the first.
/* global setImmediate */
process.on('SIGUSR2', () => {
  if (process.env.PROVOKE_CRASH === 'exception') {
    setImmediate(() => {
      throw new Error('provoked uncaught exception');
    });
    setImmediate(() => {
      throw new Error('a second provoked uncaught exception');
    });
    return;
  }
  void Promise.reject(new Error('provoked unhandled rejection'));
  void Promise.reject(new Error('a second provoked unhandled rejection'));
});
