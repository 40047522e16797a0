import { exitCleanlyOnSignals } from '../core/interrupt.js'
import { main } from './main.js'

declare const KLUIS_VERSION: string

exitCleanlyOnSignals((message) => process.stderr.write(`${message}\n`))
const exitCode = await main(
  process.argv.slice(2),
  process.env,
  { stdout: (text) => process.stdout.write(text), stderr: (text) => process.stderr.write(text) },
  typeof KLUIS_VERSION === 'string' ? KLUIS_VERSION : 'dev',
)
process.exitCode = exitCode
