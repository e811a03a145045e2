//! Diesel schema shared by both backends (kept by hand in step with `migrations/`).
//!
//! Longer than the ~600-line rule for source files: it is one `table!` per table and
//! nothing else, in the shape `diesel print-schema` gives, so that it can be compared with
//! the migrations at a glance.

diesel::table! {
    organisations (id) {
        id -> Text,
        parent_id -> Nullable<Text>,
        kind -> Text,
        name -> Text,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        display_name -> Text,
        password_hash -> Nullable<Text>,
        email_verified_at -> Nullable<Timestamp>,
        email_mfa_enabled -> Integer,
        status -> Text,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        notification_mode -> Text,
        last_digest_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    reminder_days (day) {
        day -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    notification_queue (id) {
        id -> Text,
        user_id -> Text,
        subject -> Text,
        body -> Text,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    assessment_forms (id) {
        id -> Text,
        instrument -> Text,
        organisation_id -> Text,
        definition -> Text,
        version -> Integer,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    user_roles (id) {
        id -> Text,
        user_id -> Text,
        role -> Text,
        organisation_id -> Text,
        granted_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    invitations (id) {
        id -> Text,
        email -> Text,
        display_name -> Nullable<Text>,
        role -> Text,
        organisation_id -> Text,
        token_hash -> Text,
        invited_by -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        accepted_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        user_id -> Nullable<Text>,
    }
}

diesel::table! {
    totp_credentials (user_id) {
        user_id -> Text,
        secret -> Nullable<Text>,
        pending_secret -> Nullable<Text>,
        confirmed_at -> Nullable<Timestamp>,
        last_used_step -> Nullable<BigInt>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> Text,
        user_id -> Text,
        code_hash -> Text,
        used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    mfa_challenges (id) {
        id -> Text,
        token_hash -> Text,
        user_id -> Text,
        purpose -> Text,
        attempts -> Integer,
        email_code_hash -> Nullable<Text>,
        email_code_expires_at -> Nullable<Timestamp>,
        email_code_attempts -> Integer,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        consumed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    remembered_devices (id) {
        id -> Text,
        user_id -> Text,
        token_hash -> Text,
        name -> Text,
        created_at -> Timestamp,
        last_used_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    passkeys (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        credential_id -> Text,
        credential -> Text,
        sign_count -> BigInt,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    passkey_ceremonies (id) {
        id -> Text,
        purpose -> Text,
        user_id -> Text,
        challenge_id -> Nullable<Text>,
        state -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        second_factor -> Text,
        client_address -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        created_at -> Timestamp,
        last_used_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revoked_reason -> Nullable<Text>,
        second_factor_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        session_id -> Text,
        created_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    mail_tokens (token_hash) {
        token_hash -> Text,
        purpose -> Text,
        user_id -> Text,
        new_email -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    rate_limits (key) {
        key -> Text,
        window_start -> Timestamp,
        count -> Integer,
    }
}

diesel::table! {
    idempotency_keys (scope, key) {
        scope -> Text,
        key -> Text,
        request_hash -> Text,
        status_code -> Nullable<Integer>,
        content_type -> Nullable<Text>,
        etag -> Nullable<Text>,
        response_body -> Nullable<Text>,
        created_at -> Timestamp,
        outcome -> Nullable<Text>,
    }
}

diesel::table! {
    sealing_keys (id) {
        id -> Text,
        check_value -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    audit_log (seq) {
        seq -> BigInt,
        at -> Timestamp,
        actor_id -> Nullable<Text>,
        client -> Nullable<Text>,
        action -> Text,
        entity -> Text,
        entity_id -> Text,
        enrolment_id -> Nullable<Text>,
        data -> Text,
        prev_hash -> Text,
        hash -> Text,
        hash_version -> Integer,
        data_digest -> Nullable<Text>,
        data_erased_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    activities (id) {
        id -> Text,
        enrolment_id -> Text,
        kind -> Text,
        title -> Text,
        start_date -> Text,
        end_date -> Nullable<Text>,
        placement_id -> Nullable<Text>,
        checklist_item_id -> Nullable<Text>,
        template_version -> Integer,
        reflection -> Text,
        version -> Integer,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    record_delmal (record_id, code) {
        record_id -> Text,
        code -> Text,
        enrolment_id -> Text,
        record_type -> Text,
    }
}

diesel::table! {
    attachments (id) {
        id -> Text,
        enrolment_id -> Text,
        record_id -> Text,
        filename -> Text,
        content_type -> Text,
        size_bytes -> BigInt,
        sha256 -> Text,
        storage_key -> Text,
        uploaded_by -> Text,
        created_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    assessments (id) {
        id -> Text,
        enrolment_id -> Text,
        instrument -> Text,
        status -> Text,
        assessor_id -> Nullable<Text>,
        placement_id -> Nullable<Text>,
        performed_on -> Text,
        context -> Text,
        ratings -> Text,
        entrustment -> Nullable<Integer>,
        feedback_strengths -> Text,
        feedback_next_steps -> Text,
        trainee_reflection -> Text,
        decline_reason -> Nullable<Text>,
        supersedes_id -> Nullable<Text>,
        superseded_by -> Nullable<Text>,
        created_by -> Text,
        requested_at -> Nullable<Timestamp>,
        signed_at -> Nullable<Timestamp>,
        signed_by -> Nullable<Text>,
        signature_method -> Nullable<Text>,
        content_hash -> Nullable<Text>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
        assessor_email -> Nullable<Text>,
        signed_by_email -> Nullable<Text>,
    }
}

diesel::table! {
    signing_links (token_hash) {
        token_hash -> Text,
        assessment_id -> Text,
        email -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        vetted_by -> Nullable<Text>,
    }
}

diesel::table! {
    external_assessors (id) {
        id -> Text,
        organisation_id -> Text,
        email -> Text,
        name -> Text,
        workplace -> Text,
        status -> Text,
        requested_by -> Text,
        enrolment_id -> Text,
        decided_by -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        specialist -> Nullable<Integer>,
        specialty -> Nullable<Text>,
        assessment_training -> Nullable<Integer>,
        assessment_training_detail -> Nullable<Text>,
        qualifications_confirmed_by -> Nullable<Text>,
    }
}

diesel::table! {
    talks (id) {
        id -> Text,
        enrolment_id -> Text,
        kind -> Text,
        held_on -> Text,
        placement_id -> Nullable<Text>,
        next_placement_id -> Nullable<Text>,
        topics -> Text,
        notes -> Text,
        agreed_actions -> Text,
        content -> Text,
        status -> Text,
        created_by -> Text,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    talk_participants (talk_id, user_id) {
        talk_id -> Text,
        user_id -> Text,
        role -> Text,
        confirmed_at -> Nullable<Timestamp>,
        confirmed_hash -> Nullable<Text>,
        confirmation_method -> Nullable<Text>,
    }
}

diesel::table! {
    summary_assessments (id) {
        id -> Text,
        enrolment_id -> Text,
        placement_id -> Text,
        author_id -> Text,
        judgements -> Text,
        overall -> Text,
        status -> Text,
        supersedes_id -> Nullable<Text>,
        superseded_by -> Nullable<Text>,
        signed_at -> Nullable<Timestamp>,
        signature_method -> Nullable<Text>,
        content_hash -> Nullable<Text>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(user_roles -> users (user_id));
diesel::joinable!(user_roles -> organisations (organisation_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::joinable!(sessions -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    organisations,
    users,
    user_roles,
    invitations,
    totp_credentials,
    recovery_codes,
    mfa_challenges,
    remembered_devices,
    passkeys,
    passkey_ceremonies,
    sessions,
    refresh_tokens,
    mail_tokens,
    rate_limits,
    idempotency_keys,
    regulations,
    delmal,
    programme_templates,
    enrolments,
    placements,
    leave_periods,
    assignments,
    credited_service,
    study_plan_goals,
    audit_log,
    activities,
    record_delmal,
    attachments,
    assessments,
    signing_links,
    external_assessors,
    talks,
    talk_participants,
    notification_queue,
    reminder_days,
    assessment_forms,
    summary_assessments,
);

diesel::table! {
    regulations (id) {
        id -> Text,
        code -> Text,
        version -> Integer,
        name_sv -> Text,
        name_en -> Nullable<Text>,
        statute -> Text,
        in_force -> Nullable<Text>,
        rules -> Text,
        content_hash -> Text,
        source -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    delmal (id) {
        id -> Text,
        regulation_id -> Text,
        code -> Text,
        group_code -> Nullable<Text>,
        specialty -> Text,
        title_sv -> Text,
        title_en -> Nullable<Text>,
        description -> Nullable<Text>,
        position -> Integer,
        created_at -> Timestamp,
    }
}

diesel::table! {
    programme_templates (id) {
        id -> Text,
        template_id -> Text,
        version -> Integer,
        organisation_id -> Text,
        regulation_id -> Text,
        name -> Text,
        content -> Text,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    enrolments (id) {
        id -> Text,
        trainee_id -> Text,
        organisation_id -> Text,
        template_id -> Text,
        template_version -> Integer,
        track -> Text,
        start_date -> Text,
        planned_end -> Text,
        extent_percent -> Integer,
        status -> Text,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        bt_enrolment_id -> Nullable<Text>,
        applied_on -> Nullable<Text>,
    }
}

diesel::table! {
    placements (id) {
        id -> Text,
        enrolment_id -> Text,
        placement_type -> Text,
        start_date -> Text,
        end_date -> Text,
        unit_id -> Nullable<Text>,
        version -> Integer,
        removed_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    leave_periods (id) {
        id -> Text,
        enrolment_id -> Text,
        kind -> Text,
        start_date -> Text,
        end_date -> Text,
        percent -> Integer,
        removed_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    assignments (id) {
        id -> Text,
        enrolment_id -> Text,
        user_id -> Text,
        role -> Text,
        placement_id -> Nullable<Text>,
        valid_from -> Text,
        valid_to -> Nullable<Text>,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    credited_service (id) {
        id -> Text,
        enrolment_id -> Text,
        description -> Text,
        start_date -> Text,
        end_date -> Text,
        credited_days -> Integer,
        evidence -> Text,
        delmal -> Text,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    study_plan_goals (id) {
        id -> Text,
        enrolment_id -> Text,
        placement_id -> Nullable<Text>,
        goal -> Text,
        delmal -> Text,
        status -> Text,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        updated_by -> Nullable<Text>,
    }
}

diesel::table! {
    final_assessments (id) {
        id -> Text,
        enrolment_id -> Text,
        mode -> Text,
        decision -> Nullable<Text>,
        judgements -> Text,
        missing -> Text,
        rationale -> Text,
        status -> Text,
        content_hash -> Nullable<Text>,
        created_by -> Text,
        decided_at -> Nullable<Timestamp>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    final_assessment_signers (final_assessment_id, user_id) {
        final_assessment_id -> Text,
        user_id -> Text,
        role -> Text,
        signed_at -> Nullable<Timestamp>,
        signed_hash -> Nullable<Text>,
        signature_method -> Nullable<Text>,
    }
}

diesel::table! {
    service_keys (id) {
        id -> Text,
        purpose -> Text,
        algorithm -> Text,
        public_key -> Text,
        private_key -> Text,
        created_at -> Timestamp,
        retired_at -> Nullable<Timestamp>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    final_assessments,
    final_assessment_signers,
    service_keys,
    users,
);

// ---- Integrations (issue 6) ------------------------------------------------------------

diesel::table! {
    api_clients (id) {
        id -> Text,
        organisation_id -> Text,
        name -> Text,
        scopes -> Text,
        secret_hash -> Text,
        secret_rotated_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        created_by -> Nullable<Text>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    api_client_tokens (id) {
        id -> Text,
        client_id -> Text,
        token_hash -> Text,
        scopes -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    xapi_activity_mappings (id) {
        id -> Text,
        organisation_id -> Text,
        activity_iri -> Text,
        kind -> Text,
        title -> Text,
        delmal -> Text,
        created_by -> Nullable<Text>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    xapi_account_links (id) {
        id -> Text,
        organisation_id -> Text,
        home_page -> Text,
        name -> Text,
        user_id -> Text,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    xapi_statements (organisation_id, id) {
        id -> Text,
        client_id -> Text,
        organisation_id -> Text,
        content_hash -> Text,
        statement -> Text,
        status -> Text,
        reason -> Nullable<Text>,
        detail -> Nullable<Text>,
        verb -> Text,
        activity_iri -> Text,
        learner -> Text,
        user_id -> Nullable<Text>,
        enrolment_id -> Nullable<Text>,
        activity_id -> Nullable<Text>,
        received_at -> Timestamp,
        resolved_at -> Nullable<Timestamp>,
        version -> Integer,
        updated_at -> Timestamp,
        voided_by -> Nullable<Text>,
        voided_at -> Nullable<Timestamp>,
        registration -> Nullable<Text>,
    }
}

diesel::table! {
    webhook_subscriptions (id) {
        id -> Text,
        organisation_id -> Text,
        url -> Text,
        events -> Text,
        description -> Text,
        secret -> Text,
        active -> Integer,
        created_by -> Nullable<Text>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        subscription_id -> Text,
        organisation_id -> Text,
        event_id -> Text,
        event -> Text,
        body -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Nullable<Timestamp>,
        locked_until -> Nullable<Timestamp>,
        lease -> Nullable<Text>,
        last_status_code -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        give_up_at -> Timestamp,
        replay_of -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
        traceparent -> Nullable<Text>,
        tracestate -> Nullable<Text>,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> Text,
        delivery_id -> Text,
        attempt -> Integer,
        at -> Timestamp,
        status_code -> Nullable<Integer>,
        error -> Nullable<Text>,
        duration_ms -> Integer,
    }
}

diesel::joinable!(api_client_tokens -> api_clients (client_id));
diesel::joinable!(webhook_deliveries -> webhook_subscriptions (subscription_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_clients,
    api_client_tokens,
    xapi_activity_mappings,
    xapi_account_links,
    xapi_statements,
    webhook_subscriptions,
    webhook_deliveries,
    webhook_attempts,
);

diesel::table! {
    mail_outbox (id) {
        id -> Text,
        recipient -> Text,
        subject -> Text,
        body -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        locked_until -> Nullable<Timestamp>,
        lease -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
    }
}

// The administrators' outbox view selects mail to the people of their organisations.
diesel::allow_tables_to_appear_in_same_query!(mail_outbox, users);
diesel::allow_tables_to_appear_in_same_query!(mail_outbox, user_roles);
diesel::allow_tables_to_appear_in_same_query!(mail_outbox, invitations);
diesel::allow_tables_to_appear_in_same_query!(mail_outbox, external_assessors);

diesel::table! {
    account_tokens (token_hash) {
        token_hash -> Text,
        purpose -> Text,
        user_id -> Text,
        old_email -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    domain_events (id) {
        id -> Text,
        kind -> Text,
        organisation_id -> Nullable<Text>,
        enrolment_id -> Nullable<Text>,
        data -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    personal_identities (user_id) {
        user_id -> Text,
        region_id -> Text,
        number_sealed -> Nullable<Text>,
        number_mac -> Nullable<Text>,
        protected_identity -> Integer,
        hsa_id -> Nullable<Text>,
        version -> Integer,
        updated_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(personal_identities, users);
diesel::allow_tables_to_appear_in_same_query!(personal_identities, user_roles);

// ---- Sign-in with an e-ID over OpenID Connect (issue 15) -------------------------------

diesel::table! {
    oidc_flows (state_hash) {
        state_hash -> Text,
        purpose -> Text,
        user_id -> Nullable<Text>,
        session_id -> Nullable<Text>,
        issuer -> Text,
        nonce -> Text,
        pkce_verifier -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    oidc_links (id) {
        id -> Text,
        user_id -> Text,
        issuer -> Text,
        subject -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(oidc_links -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(oidc_flows, oidc_links, users);

diesel::table! {
    extent_periods (id) {
        id -> Text,
        enrolment_id -> Text,
        valid_from -> Text,
        extent_percent -> Integer,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    placement_evaluations (placement_id) {
        placement_id -> Text,
        enrolment_id -> Text,
        unit_id -> Text,
        term -> Text,
        answers -> Text,
        comment -> Nullable<Text>,
        submitted_at -> Timestamp,
    }
}

diesel::table! {
    group_reviews (id) {
        id -> Text,
        enrolment_id -> Text,
        held_on -> Text,
        outcome -> Text,
        summary -> Text,
        recorded_by -> Text,
        created_at -> Timestamp,
    }
}

// ---- Accepted attachment types per region (issue 17) ------------------------------------

diesel::table! {
    region_attachment_types (region_id) {
        region_id -> Text,
        media_types -> Text,
        version -> Integer,
        updated_by -> Nullable<Text>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    retention_policies (organisation_id) {
        organisation_id -> Text,
        keep_months -> Integer,
        version -> Integer,
        updated_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    retention_runs (id) {
        id -> Text,
        organisation_id -> Text,
        run_on -> Text,
        ran_at -> Timestamp,
        keep_months -> Integer,
        enrolments -> Integer,
        counts -> Text,
    }
}

diesel::table! {
    restrictions (id) {
        id -> Text,
        subject_kind -> Text,
        subject_id -> Text,
        organisation_id -> Text,
        reason -> Text,
        restricted_by -> Text,
        restricted_at -> Timestamp,
        lifted_by -> Nullable<Text>,
        lifted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    signer_profiles (user_id) {
        user_id -> Text,
        specialty -> Nullable<Text>,
        workplace -> Nullable<Text>,
        supervisor_training_on -> Nullable<Text>,
        version -> Integer,
        updated_by -> Text,
        updated_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(signer_profiles, users);

// ---- Transfer between services (issue 17, src/transfer) ---------------------------------

diesel::table! {
    trusted_services (id) {
        id -> Text,
        organisation_id -> Text,
        name -> Text,
        base_url -> Text,
        public_keys -> Text,
        created_by -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    transfer_imports (id) {
        id -> Text,
        digest -> Text,
        bundle_id -> Text,
        trusted_service_id -> Text,
        service_name -> Text,
        sending_service_id -> Text,
        sending_base_url -> Text,
        key_id -> Text,
        source_enrolment_id -> Text,
        enrolment_id -> Text,
        imported_by -> Text,
        imported_at -> Timestamp,
        unmapped_delmal -> Text,
    }
}

diesel::table! {
    transferred_records (id) {
        id -> Text,
        import_id -> Text,
        enrolment_id -> Text,
        record_type -> Text,
        original_id -> Text,
        kept_as -> Text,
        title -> Text,
        record_date -> Nullable<Text>,
        signed_by_name -> Nullable<Text>,
        signed_by_role -> Nullable<Text>,
        signed_at -> Nullable<Timestamp>,
        delmal -> Text,
        unmapped_delmal -> Text,
        content -> Text,
        created_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(transfer_imports, transferred_records);

diesel::table! {
    account_erasures (user_id) {
        user_id -> Text,
        organisation_id -> Text,
        erased_by -> Text,
        erased_at -> Timestamp,
        name_kept -> Integer,
        counts -> Text,
    }
}

diesel::table! {
    course_confirmations (activity_id) {
        activity_id -> Text,
        enrolment_id -> Text,
        kursledare_email -> Text,
        kursledare_name -> Text,
        kursledare_workplace -> Text,
        status -> Text,
        requested_by -> Text,
        requested_at -> Timestamp,
        vetted_by -> Nullable<Text>,
        confirmed_at -> Nullable<Timestamp>,
        content_hash -> Nullable<Text>,
        version -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    course_confirmation_links (token_hash) {
        token_hash -> Text,
        activity_id -> Text,
        email -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(course_confirmations, course_confirmation_links);
diesel::allow_tables_to_appear_in_same_query!(course_confirmations, enrolments);

// ---- Keys of the audit log's text digests (issue 17, src/audit/text.rs) ------------------

diesel::table! {
    audit_text_keys (record_id) {
        record_id -> Text,
        enrolment_id -> Nullable<Text>,
        key_hex -> Text,
        created_at -> Timestamp,
    }
}
