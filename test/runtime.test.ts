import { describe, expect, it } from 'vitest'

describe('runtime', () => {
  it('tests run on Node 24 or newer (the action runtime), not the system Node', () => {
    expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(24)
  })
})
