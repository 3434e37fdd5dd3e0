// Activity options shared by both workflows.
import type { ActivityOptions } from '@temporalio/workflow';
import { RESTORE_FAILED } from '../domain/failure-types.js';

/**
 * Restoring is what keeps the service alive: retried with backoff, and when it finally cannot, it fails
 * non-retryably so that the host is latched and a person is paged. The healing workflow's restore and the
 * coordinator's recovery of an abandoned canary both run the restore.
 */
export const RESTORE_ACTIVITY_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '30 seconds',
  retry: {
    initialInterval: '5 seconds',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 6,
    nonRetryableErrorTypes: [RESTORE_FAILED],
  },
};
