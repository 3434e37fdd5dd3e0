#!/usr/bin/env node
// healctl: runs the TypeScript sources through tsx, so a git checkout needs no build step.
import { register } from 'tsx/esm/api';

register();
await import('../src/client/healctl.ts');
