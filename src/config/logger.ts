// Structured logs through pino. Processes that print for people (healctl) log to stderr only.
import { destination, pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(
  name: string,
  level = process.env.KLR_LOG_LEVEL ?? 'info',
  fd: 1 | 2 = 1,
): Logger {
  return pino(
    {
      name,
      level,
      redact: { paths: ['apiKey', 'token', '*.apiKey', '*.token', '*.authorization'], censor: '[redacted]' },
    },
    destination(fd),
  );
}
