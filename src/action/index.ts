import * as core from '@actions/core'
import { exitCleanlyOnSignals } from '../core/interrupt.js'
import { run } from './main.js'

// A cancelled workflow run sends SIGINT: leave no staging folder or database copy behind.
exitCleanlyOnSignals((message) => core.error(message))
await run()
