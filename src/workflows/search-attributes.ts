// Search attributes that let the Web UI and `healctl list` filter healing workflows. They must be
// registered on the server (the dev server is started with them; see docs/servers.md).
import { defineSearchAttributeKey } from '@temporalio/common';

export const HOST_ATTRIBUTE = defineSearchAttributeKey('KlrHost', 'KEYWORD');
export const KIND_ATTRIBUTE = defineSearchAttributeKey('KlrKind', 'KEYWORD');
export const MODE_ATTRIBUTE = defineSearchAttributeKey('KlrMode', 'KEYWORD');
export const ARMED_ATTRIBUTE = defineSearchAttributeKey('KlrArmed', 'BOOL');
/**
 * The healing workflow's phase (watching, waiting_for_window, canary_running, …). Added in 0.4: a server
 * set up for 0.3 may not have it, and upserting an attribute the namespace lacks fails the workflow task,
 * so the workflows set it only where the worker found it registered (phaseAttributeRegistered).
 */
export const PHASE_ATTRIBUTE = defineSearchAttributeKey('KlrPhase', 'KEYWORD');

/**
 * The service a healing workflow heals (0.5, issue 17): set, like KlrPhase, only where the namespace has it
 * registered (serviceAttributeRegistered), so a namespace set up for 0.4 keeps working.
 */
export const SERVICE_ATTRIBUTE = defineSearchAttributeKey('KlrService', 'KEYWORD');

/** Name → type, as `temporal server start-dev --search-attribute` and the operator API take them. */
export const SEARCH_ATTRIBUTE_TYPES = {
  KlrHost: 'Keyword',
  KlrKind: 'Keyword',
  KlrMode: 'Keyword',
  KlrArmed: 'Bool',
  KlrPhase: 'Keyword',
  KlrService: 'Keyword',
} as const;
