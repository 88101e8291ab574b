// The reference device agent: pairs once, then keeps a tunnel to the API and serves its requests.
export {
  startReferenceAgent,
  type AgentLogger,
  type AgentState,
  type ReferenceAgent,
  type ReferenceAgentOptions,
} from './agent.js';
export { createDefaultAgentHandler, type AgentHandler, type DefaultHandlerOptions } from './handler.js';
export { pairAgent, type PairAgentOptions, type PairedAgent } from './pair.js';
