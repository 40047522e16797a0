import { describe, expect, it } from 'vitest'
import { parseConfig, requireWriterKey } from '../src/config/config.js'
import { exampleConfig } from './support/project.js'

describe('configuration', () => {
  it('parses the example of the README as written', () => {
    const config = parseConfig(exampleConfig, '/srv/app/kluis.yml', {})
    expect(config.repository).toBe('file://./backup-repo')
    expect(config.baseDirectory).toBe('/srv/app')
    expect(config.keys.readers.get('default')).toEqual(['keys/reader.asc'])
    expect(requireWriterKey(config)).toBe('keys/writer.key')
    expect(config.sources).toEqual([
      { name: 'app-db', type: 'sqlite', path: 'data/app.db' },
      { name: 'uploads', type: 'files', path: 'data/uploads', exclude: ['*.tmp'] },
    ])
  })

  it('replaces ${VAR} after parsing, so a multi-line secret cannot change the YAML', () => {
    const key =
      '-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nsources: []\nxyz\n-----END PGP PRIVATE KEY BLOCK-----\n'
    const config = parseConfig(
      exampleConfig.replace('keys/writer.key', '${KLUIS_WRITER_KEY}'),
      '/x/k.yml',
      {
        KLUIS_WRITER_KEY: key,
      },
    )
    expect(requireWriterKey(config)).toBe(key)
    expect(config.sources).toHaveLength(2)
  })

  it('names an unset variable and where it is used', () => {
    const text = exampleConfig.replace('file://./backup-repo', 'file://${BACKUP_DIR}/repo')
    expect(() => parseConfig(text, '/x/k.yml', {})).toThrow(
      'environment variable BACKUP_DIR is not set (used in repository)',
    )
  })

  it('reads retention and objectives, and names a bad duration', () => {
    const config = parseConfig(
      `${exampleConfig}retention: { keep-daily: 30, keep-monthly: 12, keep-within: 1y6m, timezone: Europe/Amsterdam }\nobjectives: { rpo: 24h, key-max-age: 90d }\n`,
      '/x/k.yml',
      {},
    )
    expect(config.retention).toEqual({
      keepDaily: 30,
      keepMonthly: 12,
      keepWithin: '1y6m',
      timezone: 'Europe/Amsterdam',
    })
    expect(config.objectives).toEqual({ rpo: 24 * 3_600_000, keyMaxAge: 90 * 86_400_000 })
    expect(() => parseConfig(`${exampleConfig}objectives: { rpo: 5x }\n`, '/x/k.yml', {})).toThrow(
      'objectives.rpo',
    )
  })

  it('rejects unknown settings, duplicate names and undefined key groups', () => {
    // A misspelt setting is an error, not silently ignored.
    expect(() => parseConfig(`${exampleConfig}retension: {}\n`, '/x/k.yml', {})).toThrow(
      'retension',
    )
    const twice = exampleConfig.replace('name: uploads', 'name: app-db')
    expect(() => parseConfig(twice, '/x/k.yml', {})).toThrow("two sources are named 'app-db'")
    const group = exampleConfig.replace(
      'path: data/app.db }',
      'path: data/app.db, group: database }',
    )
    expect(() => parseConfig(group, '/x/k.yml', {})).toThrow("names key group 'database'")
  })

  it('gives sources of a key group their own readers', () => {
    const text = exampleConfig
      .replace(
        'writer-public: keys/writer.asc',
        'writer-public: keys/writer.asc\n  groups: { database: { readers: [keys/dba.asc] } }',
      )
      .replace('path: data/app.db }', 'path: data/app.db, group: database }')
    const config = parseConfig(text, '/x/k.yml', {})
    expect(config.keys.readers.get('database')).toEqual(['keys/dba.asc'])
    expect(config.sources[0]).toMatchObject({ group: 'database' })
  })
})
