// The workflows this project registers on a worker (the bundle's entry point).
export { HealingWorkflow } from './healing-workflow.js';
export { HostCoordinatorWorkflow } from './host-coordinator-workflow.js';
