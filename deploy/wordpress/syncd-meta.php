<?php
/**
 * Plugin Name: syncd media identity
 * Description: Keeps syncd's identity of each licensed asset (source, media type, media id, SHA-256, key and its sidecar document) with the attachment, so that syncd never uploads an asset twice and can rebuild its state from the media library.
 * Version: 1.1.0
 * Requires at least: 5.6
 * Requires PHP: 7.4
 * License: MIT
 *
 * Install as a must-use plugin: copy this one file to wp-content/mu-plugins/ (create the
 * folder if needed). It can also be uploaded as an ordinary plugin (Plugins > Add New >
 * Upload, zipped) and activated. It changes nothing in the media library by itself:
 *
 * - registers the attachment meta keys syncd writes through the REST API (an unregistered
 *   key is silently dropped by WordPress), writable by users who may upload files;
 * - adds collection filters to GET /wp/v2/media: syncd_key, syncd_asset
 *   ("source/media_type/media_id") and syncd_has_sidecar, each for such users only;
 * - hides the syncd_* meta from everyone else (the license history is nobody's business);
 * - serves GET /wp-json/syncd/v1/status, which syncd calls to see that this plugin is there
 *   and to learn the largest upload PHP accepts (so a larger file is refused by syncd with
 *   the setting to raise, instead of failing inside WordPress).
 */

defined( 'ABSPATH' ) || exit;

const SYNCD_META_VERSION = '1.1';

/** The attachment meta keys syncd writes, with their REST types. */
function syncd_meta_keys() {
	return array(
		'syncd_source'     => 'string',  // the configured source name, e.g. "shutterstock"
		'syncd_media_type' => 'string',  // image, video, audio, sfx, editorial_image, editorial_video
		'syncd_media_id'   => 'string',  // the agency's media id
		'syncd_sha256'     => 'string',  // hex SHA-256 of the uploaded file
		'syncd_bytes'      => 'integer', // its length
		'syncd_key'        => 'string',  // the key syncd rendered for the asset
		'syncd_sidecar'    => 'string',  // the sidecar document (JSON), as syncd wrote it
	);
}

function syncd_meta_user_may_see() {
	return current_user_can( 'upload_files' );
}

add_action(
	'init',
	static function () {
		foreach ( syncd_meta_keys() as $key => $type ) {
			register_post_meta(
				'attachment',
				$key,
				array(
					'type'          => $type,
					'single'        => true,
					'show_in_rest'  => true,
					'auth_callback' => 'syncd_meta_user_may_see',
				)
			);
		}
	}
);

add_filter(
	'rest_attachment_collection_params',
	static function ( $params ) {
		$params['syncd_key']         = array(
			'description' => 'Only attachments syncd stored under this key (exact match).',
			'type'        => 'string',
		);
		$params['syncd_asset']       = array(
			'description' => 'Only the attachment of this asset: "source/media_type/media_id".',
			'type'        => 'string',
		);
		$params['syncd_has_sidecar'] = array(
			'description' => 'Only attachments that carry a syncd sidecar.',
			'type'        => 'boolean',
		);
		return $params;
	}
);

add_filter(
	'rest_attachment_query',
	static function ( $args, $request ) {
		$clauses = array();
		// BINARY: an exact, case- and accent-sensitive comparison (the column's collation is neither).
		if ( isset( $request['syncd_key'] ) ) {
			$clauses[] = array( 'key' => 'syncd_key', 'value' => (string) $request['syncd_key'], 'type' => 'BINARY' );
		}
		if ( isset( $request['syncd_asset'] ) ) {
			$parts = explode( '/', (string) $request['syncd_asset'], 3 );
			if ( 3 !== count( $parts ) ) {
				$args['post__in'] = array( 0 ); // malformed: matches nothing
				return $args;
			}
			foreach ( array( 'syncd_source', 'syncd_media_type', 'syncd_media_id' ) as $index => $key ) {
				$clauses[] = array( 'key' => $key, 'value' => $parts[ $index ], 'type' => 'BINARY' );
			}
		}
		if ( ! empty( $request['syncd_has_sidecar'] ) ) {
			$clauses[] = array( 'key' => 'syncd_sidecar', 'compare' => 'EXISTS' );
		}
		if ( ! $clauses ) {
			return $args;
		}
		if ( ! syncd_meta_user_may_see() ) {
			$args['post__in'] = array( 0 ); // these filters reveal syncd meta: not for visitors
			return $args;
		}
		$query = array_merge( array( 'relation' => 'AND' ), $clauses );
		if ( ! empty( $args['meta_query'] ) ) {
			$query = array( 'relation' => 'AND', $args['meta_query'], $query );
		}
		$args['meta_query'] = $query;
		return $args;
	},
	10,
	2
);

add_filter(
	'rest_prepare_attachment',
	static function ( $response ) {
		if ( syncd_meta_user_may_see() || ! isset( $response->data['meta'] ) || ! is_array( $response->data['meta'] ) ) {
			return $response;
		}
		foreach ( array_keys( syncd_meta_keys() ) as $key ) {
			unset( $response->data['meta'][ $key ] );
		}
		return $response;
	}
);

add_action(
	'rest_api_init',
	static function () {
		register_rest_route(
			'syncd/v1',
			'/status',
			array(
				'methods'             => 'GET',
				'permission_callback' => 'syncd_meta_user_may_see',
				'callback'            => static function () {
					return array(
						'plugin'  => 'syncd-meta',
						'version' => SYNCD_META_VERSION,
						// The largest upload PHP accepts (the smaller of the two settings, filtered
						// by upload_size_limit), and the settings themselves, in bytes.
						'max_upload_bytes'    => (int) wp_max_upload_size(),
						'upload_max_filesize' => (int) wp_convert_hr_to_bytes( ini_get( 'upload_max_filesize' ) ),
						'post_max_size'       => (int) wp_convert_hr_to_bytes( ini_get( 'post_max_size' ) ),
						// A raw-body upload is read into memory instead (-1: no limit).
						'memory_limit'        => (int) wp_convert_hr_to_bytes( ini_get( 'memory_limit' ) ),
					);
				},
			)
		);
	}
);
