// One run of a HealingWorkflow: its state (healing-escalation.ts), the rules once loaded, what it is doing
// (phase and next step) and what people see of it. The handlers, the lease and the canary sequence share
// this one object, as the safe-message-handlers sample shares its class; the transitions stay pure.
import {
  condition,
  patched,
  setCurrentDetails,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { DecisionEvent, RefusedMessage } from '../domain/decision-codes.js';
import { appendDecision, decisionOf } from '../domain/decision-log.js';
import { type EscalationRules, type EscalationState, modeOf } from '../domain/healing-escalation.js';
import type { HealingStep } from '../domain/healing-plan.js';
import type { CanaryMode } from '../domain/policy.js';
import { type HealingRefusalCode, bump } from '../domain/workflow-counters.js';
import type { HealingPhase, HealingStateView } from './healing-messages.js';
import { type HealingViewContext, healingDetails, healingStateView } from './healing-view.js';
import { type HealingMetricsReport, healingReporter } from './metrics-sink.js';
import { SAFE_RULES_PATCH } from './patches.js';
import {
  ARMED_ATTRIBUTE,
  HOST_ATTRIBUTE,
  KIND_ATTRIBUTE,
  MODE_ATTRIBUTE,
  PHASE_ATTRIBUTE,
  SERVICE_ATTRIBUTE,
} from './search-attributes.js';
import type { ServiceIdentity } from '../activities/types.js';

export class HealingRun {
  /** True once the 0.2 rules apply to this run (always for runs a 0.2 worker starts; see SAFE_RULES_PATCH). */
  safeRules = false;
  /** The run's rules, once the host policy is loaded (handlers that act wait for them). */
  rules: EscalationRules | undefined;
  phase: HealingPhase = 'starting';
  next = 'loading the host policy';
  /** Set by handlers when the main loop must look again (armed, operator action). */
  wake = false;
  /** Signals and updates handled by this run: a bound on history that holds even where the server reports no length. */
  messagesThisRun = 0;
  /** Whether this run sets KlrPhase (0.4, where the namespace has it registered). */
  phaseAttribute = false;
  /** Whether this run sets KlrService (0.5, where the namespace has it registered and the name is known). */
  serviceAttribute = false;
  /** The window opening last announced (once per opening). */
  announcedOpening: number | null = null;
  private publishedAttributes = '';
  private readonly metrics = healingReporter();

  /**
   * The service's name as people see it: the id's service, or the name the worker gives its legacy service
   * (null until known: runs of 0.4, or a worker that names none).
   */
  serviceName: string | null;

  constructor(
    readonly workflowId: string,
    readonly host: string,
    readonly kind: string,
    readonly state: EscalationState,
    /** The id's service part (kloros-healing/<host>/<service>/<kind>); null for a legacy id. */
    readonly service: string | null = null,
  ) {
    this.serviceName = service;
  }

  /** What the worker said of the service (serviceIdentity): a legacy id's name, and whether KlrService is there. */
  learnService(identity: ServiceIdentity): void {
    this.serviceName = this.service ?? identity.legacyService;
    this.serviceAttribute = identity.serviceAttribute && this.serviceName !== null;
  }

  /** Called from workflow code only (never from a query or a validator: patched() may record a marker). */
  refreshRules(): void {
    this.safeRules ||= patched(SAFE_RULES_PATCH);
    if (this.rules) this.rules.safeRules = this.safeRules;
  }

  /** The rules, once loaded: handlers that act wait for them. */
  async activeRules(): Promise<EscalationRules> {
    await condition(() => this.rules !== undefined);
    if (this.rules === undefined) throw new Error('unreachable: the rules are loaded');
    return this.rules;
  }

  mode(): CanaryMode {
    return this.rules ? modeOf(this.state, this.rules) : 'predictive';
  }

  decide(event: DecisionEvent, by?: string): void {
    appendDecision(this.state.decisions, decisionOf(event, Date.now(), by));
    this.reportMetrics();
  }

  /** A canary held back by this workflow: recorded with its reason, and counted for the metrics. */
  refuse(code: HealingRefusalCode, event: DecisionEvent): void {
    bump(this.state.counters.refused, code);
    this.decide(event);
  }

  /** A message refused by a guard: recorded (and counted as a rejected symptom when it was one). */
  refuseMessage(what: RefusedMessage): (problem: string) => void {
    return (problem) => {
      if (what === 'symptom') this.state.totals.rejected++;
      this.decide({ code: 'message_rejected', params: { message: what, problem } });
    };
  }

  view(): HealingStateView {
    return healingStateView(this.state, this.viewContext());
  }

  /** Search attributes (only when they change) and the Web UI's current-details text. */
  publish(): void {
    const armed = this.state.armedAt !== null;
    const service = this.serviceAttribute ? this.serviceName : null;
    const key = `${this.mode()}|${String(armed)}${this.phaseAttribute ? `|${this.phase}` : ''}${service === null ? '' : `|${service}`}`;
    if (key !== this.publishedAttributes) {
      this.publishedAttributes = key;
      upsertSearchAttributes([
        { key: HOST_ATTRIBUTE, value: this.host },
        { key: KIND_ATTRIBUTE, value: this.kind },
        { key: MODE_ATTRIBUTE, value: this.mode() },
        { key: ARMED_ATTRIBUTE, value: armed },
        ...(this.phaseAttribute ? [{ key: PHASE_ATTRIBUTE, value: this.phase }] : []),
        ...(service === null ? [] : [{ key: SERVICE_ATTRIBUTE, value: service }]),
      ]);
    }
    setCurrentDetails(healingDetails(this.state, this.viewContext()));
    this.reportMetrics();
  }

  /** Tell the worker's metrics what changed (metrics-sink.ts); `ended` when the workflow returns. */
  reportMetrics(ended = false): void {
    const { state } = this;
    const report: HealingMetricsReport = {
      workflowId: this.workflowId,
      firstRunId: workflowInfo().firstExecutionRunId,
      ...(this.serviceName === null ? {} : { service: this.serviceName }),
      kind: this.kind,
      armed: state.armedAt !== null,
      totals: state.totals,
      counters: state.counters,
      lastCanary: state.lastCanary,
    };
    this.metrics.report(ended ? { ...report, ended } : report);
  }

  setPhase(phase: HealingPhase, next: string): void {
    this.phase = phase;
    this.next = next;
    this.publish();
  }

  /** Run a wait step: its announcement (once per window opening), its phase, the durable sleep. */
  async wait(step: Extract<HealingStep, { type: 'wait' }>): Promise<void> {
    if (step.announce) {
      this.announcedOpening = step.announce.opensAt;
      this.decide(step.announce.decision);
    }
    this.setPhase(step.phase, step.next);
    await this.sleepUntil(step.until);
  }

  /** Sleep durably until `until` (or forever), waking early for anything the handlers flag. */
  async sleepUntil(until: number | null): Promise<void> {
    this.wake = false;
    this.publish();
    const woken = () => this.wake || this.shouldContinueAsNew();
    if (until === null) await condition(woken);
    // The timer's summary in the Web UI's event history says what it waits for.
    else await condition(woken, Math.max(1, until - Date.now()), { summary: this.next.slice(0, 200) });
  }

  /** Whether this run's history is long enough to continue as new (checked by the main loop and its waits). */
  shouldContinueAsNew(): boolean {
    const limit = this.rules?.policy.historyEventsLimit ?? Number.POSITIVE_INFINITY;
    // Each message costs up to 4 events (received, task scheduled, started, completed): the estimate
    // errs towards continuing early, which is harmless.
    return (
      workflowInfo().continueAsNewSuggested ||
      workflowInfo().historyLength >= limit ||
      this.messagesThisRun * 4 >= limit
    );
  }

  private viewContext(): HealingViewContext {
    return {
      workflowId: this.workflowId,
      firstRunId: workflowInfo().firstExecutionRunId,
      host: this.host,
      service: this.serviceName,
      kind: this.kind,
      now: Date.now(),
      phase: this.phase,
      next: this.next,
      rules: this.rules,
    };
  }
}
